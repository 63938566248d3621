package dev.epic.text.tokenizer;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hugging Face pre-tokenization as a chain of regex splits with behaviour "Isolated": each stage splits every
 * piece of the previous stage into its matches and the unmatched stretches between them, keeping both.
 *
 * <p>Patterns are compiled with {@link Pattern#UNICODE_CHARACTER_CLASS} so that {@code \s} is Unicode
 * White_Space (NBSP, U+3000, U+2028, NEL; not U+FEFF or U+200B) as in Oniguruma; {@code \p{L}}, {@code \p{N}},
 * {@code \p{P}}, {@code \p{S}}, {@code \p{M}} are general categories with or without that flag. Each piece is
 * matched as its own string (opaque region bounds), so a lookahead at a piece's end sees end of input, as it does
 * when the reference library hands each piece to the regex separately.
 */
final class PreTokenizer {
    /** GPT-2's pattern, used by a ByteLevel pre-tokenizer with {@code use_regex: true}. */
    static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    private final List<Pattern> stages;

    PreTokenizer(List<Pattern> stages) {
        this.stages = List.copyOf(stages);
    }

    static Pattern compile(String regex) {
        return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
    }

    /** Appends (start, end) pairs of the non-empty pieces of {@code text[start, end)} to {@code out}. */
    void split(String text, int start, int end, IntList out) {
        if (start >= end) {
            return;
        }
        IntList current = new IntList();
        current.add(start);
        current.add(end);
        for (Pattern stage : stages) {
            IntList next = new IntList();
            Matcher m = stage.matcher(text);
            for (int p = 0; p < current.size(); p += 2) {
                int s = current.get(p);
                int e = current.get(p + 1);
                m.region(s, e);
                int pos = s;
                while (m.find()) {
                    if (m.start() == m.end()) {
                        continue; // an empty match yields no piece
                    }
                    if (m.start() > pos) {
                        next.add(pos);
                        next.add(m.start());
                    }
                    next.add(m.start());
                    next.add(m.end());
                    pos = m.end();
                }
                if (pos < e) {
                    next.add(pos);
                    next.add(e);
                }
            }
            current = next;
        }
        for (int p = 0; p < current.size(); p++) {
            out.add(current.get(p));
        }
    }
}
