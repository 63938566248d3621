package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import dev.epic.text.output.DeepSeekMarkers;
import java.util.BitSet;
import java.util.Set;

/**
 * The reference for a {@link TokenMask}: every token of the vocabulary but special ones and the
 * DeepSeek markers stepped through a copy of the automaton.
 */
final class BruteForce {
    private BruteForce() {}

    static <A extends ByteAutomaton<A>> BitSet allowed(Vocabulary v, A at) {
        Set<Integer> markers = DeepSeekMarkers.ids(v, DeepSeekMarkers.PARSED);
        BitSet ok = new BitSet(v.size());
        for (int id = 0; id < v.size(); id++) {
            byte[] b = v.tokenBytes(id);
            if (b.length > 0 && !v.isSpecial(id) && !markers.contains(id) && at.copy().step(b)) {
                ok.set(id);
            }
        }
        return ok;
    }
}
