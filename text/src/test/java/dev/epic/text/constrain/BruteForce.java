package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import java.util.BitSet;

/** The reference for a {@link TokenMask}: every ordinary token of the vocabulary stepped through a copy of the automaton. */
final class BruteForce {
    private BruteForce() {}

    static <A extends ByteAutomaton<A>> BitSet allowed(Vocabulary v, A at) {
        BitSet ok = new BitSet(v.size());
        for (int id = 0; id < v.size(); id++) {
            byte[] b = v.tokenBytes(id);
            if (b.length > 0 && !v.isSpecial(id) && at.copy().step(b)) {
                ok.set(id);
            }
        }
        return ok;
    }
}
