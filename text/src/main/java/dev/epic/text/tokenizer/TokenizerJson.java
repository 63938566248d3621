package dev.epic.text.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.TextException;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Reads a Hugging Face {@code tokenizer.json} (byte-level BPE) into a {@link Tokenizer}. The 128k-entry vocab and
 * merges are streamed; the small sections (added tokens, normalizer, pre-tokenizer, decoder) are read as trees.
 * Anything this engine does not implement is rejected with the offending field named, never silently ignored.
 */
final class TokenizerJson {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(TokenizerJson.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String source;
    private Map<String, Integer> vocab;
    /** Merges in file order, kept as strings only when they come before the vocab in the file. */
    private List<String[]> pendingMerges;
    private MergeTable mergeTable;
    private int mergeCount = -1;
    private JsonNode addedTokens;
    private JsonNode normalizer;
    private JsonNode preTokenizer;
    private JsonNode decoder;
    private String modelType = "BPE";

    private TokenizerJson(String source) {
        this.source = source;
    }

    static Tokenizer read(InputStream in, String source, TokenizerConfig config) {
        TokenizerJson t = new TokenizerJson(source);
        try (JsonParser p = MAPPER.createParser(in)) {
            t.parseRoot(p);
        } catch (IOException e) {
            throw new TextException(source + ": not a readable tokenizer.json: " + e.getMessage(), e);
        }
        return t.build(config);
    }

    private void parseRoot(JsonParser p) throws IOException {
        expect(p.nextToken(), JsonToken.START_OBJECT, "top level");
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            p.nextToken();
            switch (field) {
                case "model" -> parseModel(p);
                case "added_tokens" -> addedTokens = p.readValueAsTree();
                case "normalizer" -> normalizer = p.readValueAsTree();
                case "pre_tokenizer" -> preTokenizer = p.readValueAsTree();
                case "decoder" -> decoder = p.readValueAsTree();
                default -> p.skipChildren();
            }
        }
    }

    private void parseModel(JsonParser p) throws IOException {
        expect(p.currentToken(), JsonToken.START_OBJECT, "model");
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            switch (field) {
                case "type" -> modelType = p.getText();
                case "vocab" -> {
                    expect(value, JsonToken.START_OBJECT, "model.vocab");
                    vocab = new HashMap<>(256 * 1024);
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String token = p.currentName();
                        if (p.nextToken() != JsonToken.VALUE_NUMBER_INT) {
                            throw new TextException(source + ": model.vocab[\"" + token + "\"] must be an integer id");
                        }
                        vocab.put(token, p.getIntValue());
                    }
                }
                case "merges" -> {
                    expect(value, JsonToken.START_ARRAY, "model.merges");
                    // Usually the vocab came first: resolve each merge as it streams by.
                    List<String[]> merges = vocab == null ? new ArrayList<>(160_000) : null;
                    MergeTable table = vocab == null ? null : new MergeTable(1 << 17);
                    int rank = 0;
                    JsonToken t;
                    while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                        String[] pair;
                        if (t == JsonToken.VALUE_STRING) {
                            String s = p.getText();
                            int sp = s.indexOf(' ');
                            if (sp <= 0 || sp != s.lastIndexOf(' ') || sp == s.length() - 1) {
                                throw new TextException(source + ": model.merges[" + rank
                                        + "] must be \"left right\", got \"" + s + "\"");
                            }
                            pair = new String[] {s.substring(0, sp), s.substring(sp + 1)};
                        } else if (t == JsonToken.START_ARRAY) {
                            String a = p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                            String b = p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                            if (a == null || b == null || p.nextToken() != JsonToken.END_ARRAY) {
                                throw new TextException(source + ": model.merges[" + rank
                                        + "] must be a pair of strings");
                            }
                            pair = new String[] {a, b};
                        } else {
                            throw new TextException(source + ": model.merges[" + rank
                                    + "] must be a string or a pair of strings");
                        }
                        if (table != null) {
                            addMerge(table, rank, pair[0], pair[1]);
                        } else {
                            merges.add(pair);
                        }
                        rank++;
                    }
                    pendingMerges = merges;
                    mergeTable = table;
                    mergeCount = rank;
                }
                case "byte_fallback" -> {
                    if (value == JsonToken.VALUE_TRUE) {
                        throw new TextException(source + ": model.byte_fallback=true is not supported");
                    }
                }
                case "dropout" -> {
                    if (value != JsonToken.VALUE_NULL && p.getValueAsDouble() != 0.0) {
                        throw new TextException(source + ": model.dropout is not supported");
                    }
                }
                case "continuing_subword_prefix", "end_of_word_suffix" -> {
                    if (value != JsonToken.VALUE_NULL && !p.getText().isEmpty()) {
                        throw new TextException(source + ": model." + field + " is not supported");
                    }
                }
                case "ignore_merges" -> {
                    if (value == JsonToken.VALUE_TRUE) {
                        throw new TextException(source + ": model.ignore_merges=true is not supported");
                    }
                }
                default -> p.skipChildren();
            }
        }
    }

    private void expect(JsonToken got, JsonToken want, String where) {
        if (got != want) {
            throw new TextException(source + ": " + where + " must be " + want + ", got " + got);
        }
    }

    private Tokenizer build(TokenizerConfig config) {
        if (!"BPE".equals(modelType)) {
            throw new TextException(source + ": model.type must be BPE, got " + modelType);
        }
        if (vocab == null || mergeCount < 0) {
            throw new TextException(source + ": model.vocab and model.merges are required");
        }
        checkNormalizer(normalizer);
        List<Pattern> stages = new ArrayList<>();
        boolean byteLevel = preTokenizerStages(preTokenizer, stages, "pre_tokenizer");
        if (!byteLevel) {
            throw new TextException(source + ": pre_tokenizer must include ByteLevel (only byte-level BPE is supported)");
        }
        if (decoder != null && !decoder.isNull() && !"ByteLevel".equals(decoder.path("type").asText())) {
            throw new TextException(source + ": decoder.type must be ByteLevel, got " + decoder.path("type").asText());
        }

        int maxId = -1;
        for (int id : vocab.values()) {
            maxId = Math.max(maxId, id);
        }
        record Added(int id, String content, boolean special) {}
        List<Added> added = new ArrayList<>();
        if (addedTokens != null && !addedTokens.isNull()) {
            int i = 0;
            for (JsonNode a : addedTokens) {
                String where = "added_tokens[" + i++ + "]";
                if (!a.path("id").isInt() || !a.path("content").isTextual()) {
                    throw new TextException(source + ": " + where + " needs an integer id and a string content");
                }
                if (a.path("lstrip").asBoolean() || a.path("rstrip").asBoolean() || a.path("single_word").asBoolean()) {
                    LOG.warn("{}: {} ({}) sets lstrip/rstrip/single_word, which this tokenizer ignores",
                            source, where, a.get("content").asText());
                }
                added.add(new Added(a.get("id").asInt(), a.get("content").asText(), a.path("special").asBoolean()));
                maxId = Math.max(maxId, a.get("id").asInt());
            }
        }

        String[] tokens = new String[maxId + 1];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            if (e.getValue() < 0) {
                throw new TextException(source + ": model.vocab[\"" + e.getKey() + "\"] has a negative id");
            }
            tokens[e.getValue()] = e.getKey();
        }
        boolean[] special = new boolean[maxId + 1];
        AddedTokens matcher = new AddedTokens();
        for (Added a : added) {
            tokens[a.id()] = a.content();
            special[a.id()] = a.special();
            matcher.add(a.content(), a.id());
        }

        int[] byteIds = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(ByteLevel.charOf(b)));
            byteIds[b] = id == null ? -1 : id;
        }
        MergeTable table = mergeTable;
        if (table == null) {
            table = new MergeTable(pendingMerges.size());
            for (int rank = 0; rank < pendingMerges.size(); rank++) {
                addMerge(table, rank, pendingMerges.get(rank)[0], pendingMerges.get(rank)[1]);
            }
        }
        return new Tokenizer(tokens, special, matcher, new PreTokenizer(stages), new BpeModel(byteIds, table),
                config, source, mergeCount);
    }

    private void addMerge(MergeTable table, int rank, String left, String right) {
        Integer l = vocab.get(left);
        Integer r = vocab.get(right);
        Integer merged = vocab.get(left + right);
        if (l == null || r == null || merged == null) {
            throw new TextException(source + ": model.merges[" + rank + "] (\"" + left + " " + right
                    + "\") refers to a token missing from model.vocab");
        }
        table.put(l, r, rank, merged);
    }

    private void checkNormalizer(JsonNode n) {
        if (n == null || n.isNull()) {
            return;
        }
        if ("Sequence".equals(n.path("type").asText())) {
            for (JsonNode child : n.path("normalizers")) {
                checkNormalizer(child);
            }
            return;
        }
        throw new TextException(source + ": normalizer " + n.path("type").asText() + " is not supported");
    }

    /** Collects regex stages; returns whether a ByteLevel step was seen. */
    private boolean preTokenizerStages(JsonNode n, List<Pattern> stages, String where) {
        if (n == null || n.isNull()) {
            return false;
        }
        String type = n.path("type").asText();
        switch (type) {
            case "Sequence" -> {
                boolean byteLevel = false;
                int i = 0;
                for (JsonNode child : n.path("pretokenizers")) {
                    byteLevel |= preTokenizerStages(child, stages, where + ".pretokenizers[" + i++ + "]");
                }
                return byteLevel;
            }
            case "Split" -> {
                if (!"Isolated".equals(n.path("behavior").asText()) || n.path("invert").asBoolean()) {
                    throw new TextException(source + ": " + where + ": only Split with behavior Isolated and "
                            + "invert false is supported");
                }
                JsonNode pattern = n.path("pattern");
                String regex;
                if (pattern.path("Regex").isTextual()) {
                    regex = pattern.get("Regex").asText();
                } else if (pattern.path("String").isTextual()) {
                    regex = Pattern.quote(pattern.get("String").asText());
                } else {
                    throw new TextException(source + ": " + where + ".pattern must have Regex or String");
                }
                try {
                    stages.add(PreTokenizer.compile(regex));
                } catch (PatternSyntaxException e) {
                    throw new TextException(source + ": " + where + ".pattern.Regex does not compile: "
                            + e.getMessage(), e);
                }
                return false;
            }
            case "ByteLevel" -> {
                if (n.path("add_prefix_space").asBoolean()) {
                    throw new TextException(source + ": " + where + ": add_prefix_space=true is not supported");
                }
                if (n.path("use_regex").asBoolean(true)) {
                    stages.add(PreTokenizer.compile(PreTokenizer.GPT2_PATTERN));
                }
                return true;
            }
            default -> throw new TextException(source + ": " + where + ": pre-tokenizer " + type + " is not supported");
        }
    }
}
