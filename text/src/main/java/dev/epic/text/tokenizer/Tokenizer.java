package dev.epic.text.tokenizer;

import dev.epic.text.TextException;
import dev.epic.text.Vocabulary;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.zip.GZIPInputStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Byte-level BPE tokenizer built from a Hugging Face {@code tokenizer.json}, bit-exact with the reference
 * {@code tokenizers} library: added tokens are cut out of the raw text first (leftmost, longest), the rest is
 * pre-tokenized by the file's Split regexes, mapped byte-to-char, and merged by BPE rank. Immutable and
 * thread-safe.
 */
public final class Tokenizer implements Vocabulary {
    private static final Logger LOG = LoggerFactory.getLogger(Tokenizer.class);
    static final String SHIPPED_TOKENIZER = "/dev/epic/text/deepseek-v3/tokenizer.json.gz";

    private final String[] tokens;
    private final byte[][] bytes;
    private final boolean[] special;
    private final AddedTokens added;
    private final PreTokenizer preTokenizer;
    private final BpeModel bpe;
    private final TokenizerConfig config;
    private final String source;
    private final OptionalInt bosId;
    private final OptionalInt eosId;

    Tokenizer(String[] tokens, boolean[] special, AddedTokens added, PreTokenizer preTokenizer, BpeModel bpe,
              TokenizerConfig config, String source, int mergeCount) {
        this.tokens = tokens;
        this.special = special;
        this.added = added;
        this.preTokenizer = preTokenizer;
        this.bpe = bpe;
        this.config = config;
        this.source = source;
        this.bytes = new byte[tokens.length][];
        for (int id = 0; id < tokens.length; id++) {
            if (tokens[id] != null) {
                bytes[id] = ByteLevel.tokenBytes(tokens[id]);
            }
        }
        this.bosId = idOfToken(config.bosToken());
        this.eosId = idOfToken(config.eosToken());
        LOG.debug("tokenizer {}: {} ids, {} merges, {} added tokens", source, tokens.length, mergeCount,
                added.count());
    }

    // ---- loading -------------------------------------------------------------------------------------------

    /** Reads {@code tokenizer.json} (plain or .gz) with the given config. */
    public static Tokenizer read(Path tokenizerJson, TokenizerConfig config) {
        try (InputStream in = open(Files.newInputStream(tokenizerJson), tokenizerJson.toString())) {
            return TokenizerJson.read(in, tokenizerJson.toString(), config);
        } catch (IOException e) {
            throw new TextException(tokenizerJson + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** The DeepSeek-V3 tokenizer and config shipped with EPIC (loaded once). */
    public static Tokenizer deepSeekV3() {
        return Shipped.INSTANCE;
    }

    private static final class Shipped {
        static final Tokenizer INSTANCE = loadShipped();

        private static Tokenizer loadShipped() {
            InputStream raw = Tokenizer.class.getResourceAsStream(SHIPPED_TOKENIZER);
            if (raw == null) {
                throw new TextException("missing resource " + SHIPPED_TOKENIZER);
            }
            try (InputStream in = open(raw, SHIPPED_TOKENIZER)) {
                return TokenizerJson.read(in, "resource " + SHIPPED_TOKENIZER, TokenizerConfig.deepSeekV3());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /**
     * The tokenizer of a model directory: {@code DIR/tokenizer.json} with {@code DIR/tokenizer_config.json} when
     * present, otherwise the shipped DeepSeek-V3 files (logged, since the model then must use that vocabulary).
     */
    public static Tokenizer fromModelDir(Path dir) {
        if (dir == null || !Files.isDirectory(dir)) {
            throw new TextException("model directory " + dir + " does not exist or is not a directory");
        }
        Path json = dir.resolve("tokenizer.json");
        Path cfg = dir.resolve("tokenizer_config.json");
        if (!Files.isRegularFile(json)) {
            LOG.info("{} has no tokenizer.json: using the shipped DeepSeek-V3 tokenizer", dir);
            return deepSeekV3();
        }
        TokenizerConfig config;
        if (Files.isRegularFile(cfg)) {
            config = TokenizerConfig.read(cfg);
        } else {
            LOG.warn("{} has tokenizer.json but no tokenizer_config.json: using the shipped DeepSeek-V3 config "
                    + "(BOS/EOS, chat template)", dir);
            config = TokenizerConfig.deepSeekV3();
        }
        return read(json, config);
    }

    private static InputStream open(InputStream raw, String name) throws IOException {
        BufferedInputStream in = new BufferedInputStream(raw, 1 << 16);
        in.mark(2);
        int b0 = in.read();
        int b1 = in.read();
        in.reset();
        boolean gzip = b0 == 0x1f && b1 == 0x8b;
        return gzip ? new BufferedInputStream(new GZIPInputStream(in, 1 << 16), 1 << 16) : in;
    }

    // ---- encoding ------------------------------------------------------------------------------------------

    /** Token ids of {@code text}, no BOS/EOS added. Added-token strings in the text become their ids. */
    public int[] encode(String text) {
        requireValidUnicode(text);
        IntList out = new IntList();
        IntList pieces = new IntList();
        added.scan(text, new AddedTokens.Sink() {
            @Override
            public void text(int start, int end) {
                pieces.clear();
                preTokenizer.split(text, start, end, pieces);
                for (int p = 0; p < pieces.size(); p += 2) {
                    bpe.encodePiece(text, pieces.get(p), pieces.get(p + 1), out);
                }
            }

            @Override
            public void token(int id) {
                out.add(id);
            }
        });
        return out.toArray();
    }

    /** {@code [bos] + encode(text)}, as transformers' {@code encode} with {@code add_bos_token}. */
    public int[] encodeWithBos(String text) {
        int bos = bosId.orElseThrow(() -> new TextException(
                "tokenizer " + source + " has no BOS token (bos_token in tokenizer_config.json)"));
        int[] ids = encode(text);
        int[] out = new int[ids.length + 1];
        out[0] = bos;
        System.arraycopy(ids, 0, out, 1, ids.length);
        return out;
    }

    private static void requireValidUnicode(String text) {
        if (text == null) {
            throw new TextException("text is null");
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < text.length()
                        && Character.isLowSurrogate(text.charAt(i + 1))) {
                    i++;
                } else {
                    throw new TextException(String.format(
                            "text is not valid Unicode: lone surrogate U+%04X at char index %d", (int) c, i));
                }
            }
        }
    }

    // ---- decoding ------------------------------------------------------------------------------------------

    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /**
     * Text of {@code ids}: token bytes concatenated and read as UTF-8, each maximal invalid subsequence becoming
     * one U+FFFD, as the reference's Rust decoder does (see {@link Utf8}).
     * {@code skipSpecialTokens} drops only tokens flagged special (BOS, EOS, placeholders), not chat markers.
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        return Utf8.decodeLossy(decodeBytes(ids, skipSpecialTokens));
    }

    /** The raw bytes of {@code ids} (for streaming output, where a UTF-8 sequence may span tokens). */
    public byte[] decodeBytes(int[] ids, boolean skipSpecialTokens) {
        int total = 0;
        for (int id : ids) {
            checkId(id);
            if (!(skipSpecialTokens && special[id])) {
                total += bytes[id].length;
            }
        }
        byte[] out = new byte[total];
        int pos = 0;
        for (int id : ids) {
            if (!(skipSpecialTokens && special[id])) {
                byte[] b = bytes[id];
                System.arraycopy(b, 0, out, pos, b.length);
                pos += b.length;
            }
        }
        return out;
    }

    private void checkId(int id) {
        if (id < 0 || id >= tokens.length || tokens[id] == null) {
            // No path in it: the message may reach a client.
            throw new TextException("token id " + id + " is not in the tokenizer's vocabulary (ids 0.."
                    + (tokens.length - 1) + ")");
        }
    }

    // ---- vocabulary ----------------------------------------------------------------------------------------

    @Override
    public int size() {
        return tokens.length;
    }

    @Override
    public byte[] tokenBytes(int id) {
        checkId(id);
        return bytes[id].clone();
    }

    @Override
    public boolean isSpecial(int id) {
        checkId(id);
        return special[id];
    }

    @Override
    public OptionalInt addedTokenId(String text) {
        Integer id = added.idOf(text);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** The token's string as written in tokenizer.json (byte-level form for BPE tokens, e.g. "Ġthe"). */
    public String tokenString(int id) {
        checkId(id);
        return tokens[id];
    }

    public OptionalInt bosId() {
        return bosId;
    }

    public OptionalInt eosId() {
        return eosId;
    }

    public TokenizerConfig config() {
        return config;
    }

    /** Where this tokenizer was read from (a path or the shipped resource). */
    public String source() {
        return source;
    }

    private OptionalInt idOfToken(String token) {
        if (token == null) {
            return OptionalInt.empty();
        }
        OptionalInt id = addedTokenId(token);
        if (id.isPresent()) {
            return id;
        }
        for (int i = 0; i < tokens.length; i++) {
            if (token.equals(tokens[i])) {
                return OptionalInt.of(i);
            }
        }
        LOG.warn("tokenizer {}: token {} from tokenizer_config.json is not in the vocabulary", source, token);
        return OptionalInt.empty();
    }
}
