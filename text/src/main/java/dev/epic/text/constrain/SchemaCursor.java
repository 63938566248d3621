package dev.epic.text.constrain;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A position in a JSON value being written byte by byte against a {@link JsonSchema}. Where
 * {@code anyOf} alternatives can start alike (a union of two object models), the value may still be
 * either: the cursor holds one {@link SchemaPath} per way it can still go, forks them where a value
 * starts as several alternatives, and drops each that a byte cannot follow. A byte is taken while
 * any way takes it; the text is complete when any is. JSON mode is the schema
 * {@link JsonSchema#ANY_OBJECT}.
 */
public final class SchemaCursor implements ByteAutomaton<SchemaCursor> {
    /**
     * Ways followed at once, at most. Overlapping alternatives nested deep could double them at each
     * level; past this the later ways are dropped. Each way kept can still finish, so the answer stays
     * valid and never reaches a dead end; some values just become unreachable.
     */
    static final int MAX_PATHS = 64;

    private final JsonSchema schema;
    private List<SchemaPath> paths = new ArrayList<>(1);

    public SchemaCursor(JsonSchema schema) {
        this.schema = schema;
        paths.add(new SchemaPath(schema));
    }

    @Override
    public SchemaCursor copy() {
        SchemaCursor c = new SchemaCursor(schema);
        c.copyFrom(this);
        return c;
    }

    @Override
    public void copyFrom(SchemaCursor o) {
        while (paths.size() > o.paths.size()) {
            paths.removeLast();
        }
        for (int i = 0; i < o.paths.size(); i++) {
            if (i < paths.size()) {
                paths.get(i).copyFrom(o.paths.get(i));
            } else {
                paths.add(o.paths.get(i).copy());
            }
        }
    }

    @Override
    public boolean step(int b) {
        if (paths.size() == 1) { // the usual case: one way, stepped in place
            SchemaPath p = paths.getFirst();
            if (p.step(b)) {
                return true;
            }
            int[] forks = p.forks();
            if (forks == null) {
                return false;
            }
            List<SchemaPath> next = new ArrayList<>(forks.length);
            forkInto(p, forks, b, next);
            return take(next);
        }
        List<SchemaPath> next = new ArrayList<>(paths.size());
        for (SchemaPath p : paths) {
            SchemaPath q = p.copy();
            if (q.step(b)) {
                next.add(q);
            } else if (q.forks() != null) {
                forkInto(p, q.forks(), b, next); // p is unchanged: the step that forked changed nothing
            }
        }
        return take(next);
    }

    /** One copy of p per alternative, each taking b as that alternative. */
    private static void forkInto(SchemaPath p, int[] forks, int b, List<SchemaPath> next) {
        for (int leaf : forks) {
            SchemaPath r = p.copy();
            r.force(leaf);
            if (r.step(b)) {
                next.add(r);
            }
        }
    }

    /** The ways that took the byte, with equal states merged and the first MAX_PATHS kept; false if none did. */
    private boolean take(List<SchemaPath> next) {
        if (next.size() > 1) {
            Set<Object> keys = new HashSet<>();
            next.removeIf(p -> !keys.add(p.key()));
        }
        if (next.isEmpty()) {
            return false;
        }
        if (next.size() > MAX_PATHS) {
            next.subList(MAX_PATHS, next.size()).clear();
        }
        paths = next;
        return true;
    }

    @Override
    public boolean complete() {
        for (SchemaPath p : paths) {
            if (p.complete()) {
                return true;
            }
        }
        return false;
    }

    @Override
    public Object key() {
        return key(Integer.MAX_VALUE);
    }

    @Override
    public Object key(int horizon) {
        if (paths.size() == 1) {
            return paths.getFirst().key(horizon);
        }
        // In order: which ways are dropped past MAX_PATHS depends on it, so equal keys must agree on it too.
        List<Object> keys = new ArrayList<>(paths.size());
        for (SchemaPath p : paths) {
            keys.add(p.key(horizon));
        }
        return keys;
    }
}
