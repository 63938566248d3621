package dev.epic.text.tokenizer;

import java.util.HashMap;
import java.util.Map;

/**
 * Finds added tokens (special or not) in raw text before any other processing: leftmost match first, and the
 * longest token at that position. A char trie keeps the scan at O(text length x longest token).
 */
final class AddedTokens {
    private static final class Node {
        final Map<Character, Node> children = new HashMap<>(4);
        int id = -1;
    }

    private final Node root = new Node();
    private final Map<String, Integer> ids = new HashMap<>();

    void add(String content, int id) {
        if (content.isEmpty()) {
            return;
        }
        Node n = root;
        for (int i = 0; i < content.length(); i++) {
            n = n.children.computeIfAbsent(content.charAt(i), c -> new Node());
        }
        n.id = id;
        ids.put(content, id);
    }

    Integer idOf(String content) {
        return ids.get(content);
    }

    int count() {
        return ids.size();
    }

    /** Receives the segments of text between added tokens, and the tokens themselves, in order. */
    interface Sink {
        void text(int start, int end);

        void token(int id);
    }

    void scan(String text, Sink sink) {
        int segmentStart = 0;
        int i = 0;
        int n = text.length();
        while (i < n) {
            Node node = root.children.get(text.charAt(i));
            if (node == null) {
                i++;
                continue;
            }
            int matchEnd = -1;
            int matchId = -1;
            int j = i + 1;
            while (true) {
                if (node.id >= 0) {
                    matchEnd = j;
                    matchId = node.id;
                }
                if (j >= n) {
                    break;
                }
                node = node.children.get(text.charAt(j));
                if (node == null) {
                    break;
                }
                j++;
            }
            if (matchEnd < 0) {
                i++;
                continue;
            }
            if (segmentStart < i) {
                sink.text(segmentStart, i);
            }
            sink.token(matchId);
            i = matchEnd;
            segmentStart = i;
        }
        if (segmentStart < n) {
            sink.text(segmentStart, n);
        }
    }
}
