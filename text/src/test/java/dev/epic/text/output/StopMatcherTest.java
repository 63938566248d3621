package dev.epic.text.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class StopMatcherTest {

    @Test
    void stopStringSpanningTokensIsCutAndNotEmitted() {
        StopMatcher m = new StopMatcher(List.of("STOP"));
        assertEquals("ab", m.push("ab"));
        assertEquals("", m.push("ST"));   // could be the start of STOP
        assertEquals("", m.push("O"));
        assertFalse(m.stopped());
        assertEquals("", m.push("Pxyz")); // completes STOP; text after it is dropped
        assertTrue(m.stopped());
        assertEquals("STOP", m.matched());
        assertEquals("", m.push("more"));
    }

    @Test
    void heldTextIsReleasedWhenItTurnsOutNotToBeAStop() {
        StopMatcher m = new StopMatcher(List.of("STOP"));
        assertEquals("x", m.push("xST"));
        assertEquals("STx", m.push("x"));
        assertEquals("", m.push("S"));
        assertEquals("S", m.flush());
        assertFalse(m.stopped());
    }

    @Test
    void textBeforeTheStopInTheSameDeltaIsKept() {
        StopMatcher m = new StopMatcher(List.of("\n\n", "END"));
        assertEquals("line", m.push("line\n"));
        assertEquals("", m.push("\nnext"));
        assertTrue(m.stopped());
        assertEquals("\n\n", m.matched());
    }

    @Test
    void firstStopToCompleteWinsRegardlessOfDeltaSplit() {
        StopMatcher whole = new StopMatcher(List.of("abcd", "bc"));
        assertEquals("xa", whole.push("xabcd"));
        assertEquals("bc", whole.matched());
        StopMatcher split = new StopMatcher(List.of("abcd", "bc"));
        assertEquals("x", split.push("xa"));
        assertEquals("a", split.push("bcd"));
        assertEquals("bc", split.matched());
    }

    @Test
    void noStopsPassesThrough() {
        StopMatcher m = new StopMatcher(List.of());
        assertEquals("anything <", m.push("anything <"));
        assertEquals("", m.flush());
    }
}
