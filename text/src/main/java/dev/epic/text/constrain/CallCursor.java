package dev.epic.text.constrain;

import java.util.Arrays;

/**
 * The text between two markers of a {@link ToolCallGrammar}, one byte at a time: the call type
 * ({@code function}), the newline between calls, or a call's body (a tool's name, the code fence,
 * its arguments through a {@link SchemaCursor}, the closing fence). Each part is complete only at
 * its end, where nothing may follow but the next marker.
 */
final class CallCursor implements ByteAutomaton<CallCursor> {
    private static final int TYPE = 0, BETWEEN = 1, HEAD = 2, ARGS = 3, TAIL = 4;

    private final ToolCallGrammar grammar;
    /** One cursor per tool, since a cursor belongs to one schema. */
    private final SchemaCursor[] args;
    private int stage;
    private int pos;
    /** In HEAD: the first tool whose head starts with the bytes so far; from ARGS on: the tool called. */
    private int tool;

    CallCursor(ToolCallGrammar grammar) {
        this.grammar = grammar;
        this.args = new SchemaCursor[grammar.names.size()];
    }

    /** Before {@code function}, after {@code <｜tool▁call▁begin｜>}. */
    CallCursor startType() {
        return start(TYPE);
    }

    /** Before the newline that leads to the next call. */
    CallCursor startBetween() {
        return start(BETWEEN);
    }

    /** Before the tool's name, after {@code <｜tool▁sep｜>}. */
    CallCursor startBody() {
        return start(HEAD);
    }

    private CallCursor start(int s) {
        stage = s;
        pos = 0;
        tool = 0;
        return this;
    }

    @Override
    public CallCursor copy() {
        CallCursor c = new CallCursor(grammar);
        c.copyFrom(this);
        return c;
    }

    @Override
    public void copyFrom(CallCursor o) {
        stage = o.stage;
        pos = o.pos;
        tool = o.tool;
        if (stage == ARGS) {
            cursor().copyFrom(o.args[tool]);
        }
    }

    private SchemaCursor cursor() {
        if (args[tool] == null) {
            args[tool] = new SchemaCursor(grammar.schemas.get(tool));
        }
        return args[tool];
    }

    @Override
    public boolean step(int b) {
        switch (stage) {
            case TYPE -> {
                return literal(ToolCallGrammar.TYPE, b);
            }
            case BETWEEN -> {
                return literal(ToolCallGrammar.BETWEEN, b);
            }
            case HEAD -> {
                byte[][] heads = grammar.heads;
                for (int t = tool; t < heads.length; t++) {
                    if (heads[t].length > pos && (heads[t][pos] & 0xff) == b
                            && Arrays.equals(heads[t], 0, pos, heads[tool], 0, pos)) {
                        tool = t;
                        if (++pos == heads[t].length) { // no head is a prefix of another: each ends in "\n```json\n"
                            stage = ARGS;
                            pos = 0;
                            args[t] = new SchemaCursor(grammar.schemas.get(t));
                        }
                        return true;
                    }
                }
                return false;
            }
            case ARGS -> {
                SchemaCursor c = cursor();
                // Once the arguments are a whole value, a newline starts the closing fence rather than
                // trailing whitespace: the answer has one reading.
                if (c.complete() && b == ToolCallGrammar.TAIL[0]) {
                    stage = TAIL;
                    pos = 1;
                    return true;
                }
                return c.step(b);
            }
            case TAIL -> {
                return literal(ToolCallGrammar.TAIL, b);
            }
            default -> throw new IllegalStateException("stage " + stage);
        }
    }

    private boolean literal(byte[] text, int b) {
        if (pos < text.length && (text[pos] & 0xff) == b) {
            pos++;
            return true;
        }
        return false;
    }

    @Override
    public boolean complete() {
        return switch (stage) {
            case TYPE -> pos == ToolCallGrammar.TYPE.length;
            case BETWEEN -> pos == ToolCallGrammar.BETWEEN.length;
            case TAIL -> pos == ToolCallGrammar.TAIL.length;
            default -> false;
        };
    }

    @Override
    public Object key() {
        return key(Integer.MAX_VALUE);
    }

    @Override
    public Object key(int horizon) {
        // The tool matters only while its name is read and its arguments written.
        return new Key(stage, pos, stage == HEAD || stage == ARGS ? tool : 0, stage == ARGS ? args[tool].key(horizon) : null);
    }

    private record Key(int stage, int pos, int tool, Object args) {}
}
