package dev.epic.text;

import java.util.OptionalInt;

/** What decoding and output parsing need from a tokenizer: the bytes behind each token id. */
public interface Vocabulary {
    /** Number of token ids that have a string (0 .. size-1); the model's vocab_size may be larger. */
    int size();

    /** The raw bytes token {@code id} decodes to (byte-level mapping undone; added tokens as UTF-8). */
    byte[] tokenBytes(int id);

    /** True for tokens flagged {@code special} (removed by skip_special_tokens). */
    boolean isSpecial(int id);

    /** The id of an added token given its exact text, e.g. {@code "<｜tool▁calls▁begin｜>"}. */
    OptionalInt addedTokenId(String text);
}
