package dev.epic.coordinator.scheduler;

import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCache;
import java.util.Arrays;

/** A sequence holding a batch slot, or preempted and waiting to take one again. */
final class Slot {
    static final int[] NONE = new int[0];

    final SequenceTask task;
    final int[] prompt;
    /** The order sequences are served in: by priority (lower first), then admission; preemption takes the last. */
    static final java.util.Comparator<Slot> ORDER = java.util.Comparator.comparingInt((Slot s) -> s.priority)
            .thenComparingLong(s -> s.arrival);

    final long arrival;     // admission order: preemption takes the latest first
    final int priority;     // the task's: lower first (see ORDER)
    final int maxPositions; // the most its cache will ever hold
    KvCache cache;          // null while preempted
    int[] feed;             // what prefill feeds: the prompt, after a preemption also what was generated
    int fed;                // tokens of feed already in the cache
    int next = -1;          // token to feed in the next step once feed is in
    private int[] tokens;   // the prompt, then what was generated and fed after it
    private int length;
    int[] drafts = NONE;    // speculative tokens fed after next in this step
    int[] mtpDrafts = NONE; // the MTP layer's drafts to follow next
    boolean resumed;        // joined again after a preemption
    /** Attention workers: rejoins once more than this many sequences have left (finished, failed or cancelled). */
    long rejoinAfter = -1;
    /** Its restored prefix was lost on an attention worker: it joins again without restoring one. */
    boolean prefixLost;

    Slot(SequenceTask task, long arrival, int maxPositions) {
        this.task = task;
        this.prompt = task.prompt();
        this.feed = prompt;
        this.arrival = arrival;
        this.priority = task.priority();
        this.maxPositions = maxPositions;
        this.tokens = prompt.clone();
        this.length = prompt.length;
    }

    /** A generated token is now in the cache, after the prompt and those before it. */
    void addGenerated(int token) {
        roomForOneMore();
        tokens[length++] = token;
    }

    private void roomForOneMore() {
        if (length == tokens.length) {
            tokens = Arrays.copyOf(tokens, Math.max(16, tokens.length * 2));
        }
    }

    int generatedCount() {
        return length - prompt.length;
    }

    /** The prompt and the generated tokens in the cache. */
    int[] sequence() {
        return Arrays.copyOf(tokens, length);
    }

    /**
     * Draft tokens to follow {@link #next}, by looking up its context (prompt, generated, next) in
     * itself; none while prefilling, or when the cache could not hold them.
     */
    int[] propose(PromptLookup lookup) {
        int room = maxPositions - cache.length() - 1; // next takes one position
        if (prefilling() || next < 0 || room <= 0) {
            return NONE;
        }
        roomForOneMore();
        tokens[length] = next; // context only: not counted until fed
        return lookup.propose(tokens, length + 1, room);
    }

    /** The MTP layer's drafts to follow {@link #next}, as many as the cache has room for. */
    int[] proposeMtp() {
        int room = maxPositions - cache.length() - 1;
        return prefilling() || next < 0 || room <= 0 ? NONE
                : Arrays.copyOf(mtpDrafts, Math.min(room, mtpDrafts.length));
    }

    boolean prefilling() {
        return fed < feed.length;
    }

    /** Frees the cache, if it still has one. */
    void release() {
        if (cache != null) {
            cache.release();
            cache = null;
        }
    }

    /** Part way through delivering its prompt logits: preempted, it would deliver them twice. */
    boolean givingPromptLogits() {
        return prefilling() && promptLogits() && fed > 0;
    }

    /** Prompt logits go to the task on the first prefill only; a resumed one has had them. */
    boolean promptLogits() {
        return task.wantsPromptLogits() && !resumed;
    }

    /**
     * Drops the cache: the next prefill feeds the prompt, what was generated and the pending
     * token, whose logits then choose the token after it, as the decode step would have.
     */
    void preempt() {
        if (!prefilling() && next >= 0) { // built first: should that fail, the slot is as it was
            int[] all = Arrays.copyOf(tokens, length + 1);
            all[length] = next;
            addGenerated(next);
            feed = all;
        }
        drafts = NONE;
        mtpDrafts = NONE;
        resumed |= fed > 0 || generatedCount() > 0; // one that never ran joins as new
        release();
        fed = 0;
    }

    /** Positions a resumed sequence joins with room for beyond its feed (four pages). */
    static final int RESUMED_ROOM = 4 * dev.epic.model.KvPage.POSITIONS;

    /**
     * Positions its cache reserves on joining, counted against the budget: the feed and its first
     * token, and for a resumed sequence room to decode {@link #RESUMED_ROOM} more, so that it is not
     * preempted again before it has moved; a fresh cache's size at least.
     */
    int joinSize() {
        int extra = resumed ? RESUMED_ROOM : 0;
        return Math.max(HeapKvCache.initialCapacity(maxPositions),
                (int) Math.min(maxPositions, (long) feed.length + 1 + extra));
    }
}
