package dev.epic.text.constrain;

/**
 * A recogniser of a language of byte strings (JSON, JSON matching a schema), one byte at a time,
 * that {@link TokenMask} can walk over a vocabulary. Copies must be cheap: the walk keeps one per
 * prefix depth.
 */
public interface ByteAutomaton<A extends ByteAutomaton<A>> {
    /** A fresh automaton in the same state. */
    A copy();

    /** Takes over {@code other}'s state (same grammar). */
    void copyFrom(A other);

    /** Feeds one byte (0..255); false if the text can no longer be completed (the state is then undefined). */
    boolean step(int b);

    /** Whether the text so far is complete: the generation may end here. */
    boolean complete();

    /** The state as a value with equals and hashCode: equal keys accept the same continuations, of any length. */
    Object key();

    /**
     * The state as a key for masks over tokens of at most {@code horizon} bytes: equal keys accept the
     * same continuations of that length, so more states may share one (a string far from its maxLength).
     */
    default Object key(int horizon) {
        return key();
    }

    /** Feeds every byte; false as soon as one cannot follow. */
    default boolean step(byte[] bytes) {
        for (byte b : bytes) {
            if (!step(b & 0xff)) {
                return false;
            }
        }
        return true;
    }
}
