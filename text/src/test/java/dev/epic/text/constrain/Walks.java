package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.text.Vocabulary;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.Random;
import java.util.function.IntPredicate;

/** Random walks through a vocabulary under a token mask, as constrained sampling takes them. */
final class Walks {
    private Walks() {}

    /** Whether some bytes complete {@code text} from {@code start}: a breadth-first search over the automaton's keys. */
    static <A extends ByteAutomaton<A>> boolean finishable(A start, String text) {
        A c = start.copy();
        c.step(text.getBytes(StandardCharsets.UTF_8));
        java.util.ArrayDeque<A> work = new java.util.ArrayDeque<>(java.util.List.of(c));
        java.util.Set<Object> seen = new java.util.HashSet<>();
        while (!work.isEmpty()) {
            A at = work.poll();
            if (at.complete()) {
                return true;
            }
            if (!seen.add(at.key()) || seen.size() > 2000) {
                continue;
            }
            for (int b = 0; b < 256; b++) {
                A next = at.copy();
                if (next.step(b)) {
                    work.add(next);
                }
            }
        }
        return false;
    }

    /**
     * Steps {@code at} token by token until it is complete or {@code steps} are taken, and returns the
     * bytes written. Every mask must allow a token (no dead end); at the steps {@code brute} names, the
     * mask must equal stepping every token. Short and closing tokens are preferred, so walks finish.
     */
    static <A extends ByteAutomaton<A>> byte[] walk(TokenMask<A> mask, Vocabulary v, A at, Random rng, int steps,
            IntPredicate brute) {
        return walk(mask, v, at, rng, steps, brute, new BitSet());
    }

    /** As above, taking a token of {@code preferred} half the time when one is allowed (closing ones, so maps end). */
    static <A extends ByteAutomaton<A>> byte[] walk(TokenMask<A> mask, Vocabulary v, A at, Random rng, int steps,
            IntPredicate brute, BitSet preferred) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        for (int step = 0; step < steps && !at.complete(); step++) {
            BitSet allowed = mask.allowed(at);
            assertFalse(allowed.isEmpty(), "no token can follow " + bytes.toString(StandardCharsets.UTF_8));
            if (brute.test(step)) {
                assertEquals(BruteForce.allowed(v, at), allowed, "step " + step);
            }
            int pick = -1;
            if (rng.nextBoolean() && allowed.intersects(preferred)) {
                BitSet both = (BitSet) allowed.clone();
                both.and(preferred);
                int k = rng.nextInt(both.cardinality());
                pick = both.nextSetBit(0);
                for (int i = 0; i < k; i++) {
                    pick = both.nextSetBit(pick + 1);
                }
            }
            for (int tries = 0; tries < 64 && pick < 0; tries++) {
                int c = allowed.nextSetBit(rng.nextInt(v.size()));
                c = c >= 0 ? c : allowed.nextSetBit(0);
                if (v.tokenBytes(c).length <= 2 || tries > 48) {
                    pick = c;
                }
            }
            assertTrue(at.step(v.tokenBytes(pick)));
            bytes.writeBytes(v.tokenBytes(pick));
        }
        return bytes.toByteArray();
    }
}
