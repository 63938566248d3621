package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;

/**
 * A language the whole output text is held to, apart from JSON: a regular one ({@link TextPattern}:
 * vLLM's guided_regex and guided_choice) or a context-free one ({@link Grammar}: guided_grammar).
 */
public sealed interface TextLanguage permits TextPattern, Grammar {
    /** A constraint for one generation, at the start of the text. */
    TokenConstraint constrain(Vocabulary vocab);
}
