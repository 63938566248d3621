package dev.epic.coordinator.scheduler;

import dev.epic.coordinator.attention.AttentionUnavailableException;
import dev.epic.coordinator.experts.DispatchStats;
import dev.epic.kernels.Parallel;
import dev.epic.kernels.VectorOps;
import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvCache;
import dev.epic.model.KvPool;
import dev.epic.model.PrefixStore;
import dev.epic.model.SequenceChunk;
import dev.epic.model.Transformer;
import dev.epic.model.layers.Mtp;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Continuous batching on one engine thread. Each step batches every active sequence's next token
 * (decode) with chunks of pending prompts up to {@link SchedulerOptions#prefillBudget()} tokens
 * (chunked prefill), runs ONE {@link Transformer#step} (so each MoE layer makes one expert call for
 * all rows), then hands each finished position's logits to its task. New requests join and
 * cancelled or finished ones leave between steps; a sequence's KV cache lives exactly as long as its
 * batch slot. Every sequence's math is row-independent, so batching does not change its tokens.
 *
 * <p>KV cache memory (in-process attention): a sequence joins when its prompt fits beside what the
 * running ones hold now, not what they may reach. When a step's caches would outgrow the budget, the
 * most recently arrived sequences are preempted (vLLM's recompute preemption): their caches are
 * dropped, and they rejoin ahead of the queue, prefilling their prompt and the tokens generated so
 * far again, then go on sampling where they stopped. Clients see only a pause. With the caches on
 * attention workers the same accounting runs against the workers' announced budgets added up
 * ({@link Transformer#externalKvCacheBudget()}), each cache reserving on its worker what it counts
 * here, and within each worker's own budget the latest arrivals there are preempted (to be placed
 * where there is room); a worker that still has no room refuses, and sequences there are preempted then.
 *
 * <p>With prefix caching (a {@link PrefixCache} in process, or the attention workers' kept blocks), a
 * joining sequence starts from the longest cached prefix of its prompt, and a prompt's blocks are kept
 * once it is prefilled. In process, the kept blocks are the caches' own pages, shared with every
 * sequence started from them ({@link dev.epic.model.KvPage}): the prefix cache's budget counts those
 * pages, and the KV budget counts what each sequence holds beside them.
 *
 * <p>With speculation on ({@link SchedulerOptions#speculation()}), a decoding sequence feeds its
 * pending token with tokens drafted by {@link PromptLookup}, and keeps the drafts its own choices
 * confirm ({@link #verify}).
 *
 * <p>Order: first come, first served; with {@link SchedulerOptions#priorities()} (vLLM's priority
 * policy) by each task's {@link SequenceTask#priority()} first, lower first. "Latest arrival" below
 * then means the last in that order ({@link Slot#ORDER}): the lowest priority's latest arrival is
 * preempted first, and waiting sequences join highest priority first, preempted ones among them (they
 * rejoin ahead of queued ones of their priority or lower). A running sequence is not preempted to
 * admit a waiting one of higher priority: that one takes the next free slot.
 */
public final class Scheduler implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Scheduler.class);

    private final Transformer model;
    private final SchedulerOptions options;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    /** Jobs the engine thread runs when no sequence runs or waits (guarded by lock). */
    private final ArrayDeque<Runnable> idleJobs = new ArrayDeque<>();
    /** Waiting tasks in the order they join: by priority (lower first), then arrival. */
    private final List<SequenceTask> queue = new ArrayList<>();        // guarded by lock
    private final List<Slot> active = new ArrayList<>();               // engine thread only
    private final PriorityQueue<Slot> preempted =                     // engine thread only, first in Slot.ORDER first
            new PriorityQueue<>(Slot.ORDER);
    private long arrivals;                                             // engine thread only
    private long departures;                                           // engine thread only: sequences that left the batch
    private volatile int preemptedCount;
    private volatile long preemptions;
    /** With MTP drafting, within a step: blocks to keep once its MTP layer has run, and the sequences that ended. */
    private final List<Keep> toKeep = new ArrayList<>();
    private final Set<Slot> finishedThisStep = Collections.newSetFromMap(new IdentityHashMap<>());
    private volatile long draftTokens;    // speculative tokens fed (engine thread writes)
    private volatile long acceptedDrafts; // of those, the ones chosen
    private final Thread engine;
    private volatile boolean closed;
    private volatile boolean draining; // no new sequences; the queued and running ones go on
    /** What killed the engine thread; null while it runs. Set with the queue's lock held. */
    private volatile Throwable engineFailure;
    private volatile int activeCount;
    private volatile long kvHeldBytes; // the running sequences' KV caches, as of the engine's last change
    private volatile StepStats stepStats = StepStats.ZERO; // replaced (not mutated) by the engine thread
    private volatile int peakBatch;

    private final Supplier<DispatchStats.Snapshot> expertStats;
    private final PrefixStore prefixCache; // null: off
    /**
     * Queued tasks whose prompts' blocks are being (or were) read ahead from the prefix cache's disk tier;
     * NO_READ where there was nothing to read. Engine thread only.
     */
    private final Map<SequenceTask, PrefixCache.ReadAhead> readingAhead = new IdentityHashMap<>();
    private static final PrefixCache.ReadAhead NO_READ =
            new PrefixCache.ReadAhead(java.util.concurrent.CompletableFuture.completedFuture(Map.of()), 0);
    /** KV cache bytes one position takes, here or on an attention worker. */
    private final long kvBytesPerPosition;
    /**
     * Positions the MTP layer's chained drafts write past a step's last (--num-speculative-tokens - 1 with
     * MTP drafts, else 0): reserved with the step's, so the chain never grows a cache outside the count.
     */
    private final int chainAhead;
    /** Whether the caches live in this process (under --kv-cache-mb) rather than on attention workers. */
    private final boolean localCaches;
    /** Prompt rows per step for a sequence that wants their logits: 64 x 129,280 floats is 33 MB. */
    static final int PROMPT_LOGITS_ROWS = 64;

    public Scheduler(Transformer model, SchedulerOptions options) {
        this(model, options, () -> null);
    }

    /**
     * With MTP drafts ({@link PromptLookup#mtp}) the model's MTP layer is loaded here, before any cache
     * is made ({@link Transformer#enableMtp}).
     *
     * @param expertStats totals of the remote experts, read at the end of every step (returns null for local experts)
     */
    public Scheduler(Transformer model, SchedulerOptions options, Supplier<DispatchStats.Snapshot> expertStats) {
        this.model = options.speculation().mtp() ? model.enableMtp() : model;
        this.options = options;
        this.expertStats = expertStats;
        long prefixBytes = options.prefixCacheBytes();
        if (options.prefixDisk() != null && (prefixBytes <= 0 || this.model.attentionIsExternal())) {
            throw new IllegalArgumentException("--prefix-cache-disk keeps the blocks of this process's prefix cache: it "
                    + (prefixBytes <= 0 ? "needs --prefix-cache-mb above 0" : "cannot be used with --remote-attention, "
                    + "whose blocks are kept on the attention workers"));
        }
        this.prefixCache = prefixBytes <= 0 ? null
                : this.model.attentionIsExternal() ? this.model.externalPrefixStore(prefixBytes)
                : new PrefixCache(prefixBytes, this.model.cacheLayers(), model.config().kvLoraRank(),
                        model.config().qkRopeHeadDim(), model.kvCacheDtype(), options.prefixDisk() == null ? null
                                : PrefixDisk.open(options.prefixDisk(), this.model.cacheLayers(),
                                        model.config().kvLoraRank(), model.config().qkRopeHeadDim(),
                                        model.kvCacheDtype()));
        if (prefixBytes > 0 && prefixCache == null) {
            log.info("prefix cache off: the KV caches live where prefixes cannot be kept");
        }
        this.kvBytesPerPosition = model.kvBytesPerPosition();
        this.chainAhead = options.speculation().mtp() ? Math.max(0, options.speculation().tokens() - 1) : 0;
        this.localCaches = !model.attentionIsExternal();
        this.engine = Thread.ofPlatform().name("epic-engine").daemon(true).unstarted(this::run);
    }

    /** The most positions a sequence's KV cache may reach: prompt + max tokens, within the context. */
    private int maxPositions(SequenceTask t) {
        return (int) Math.min(t.maxPositions(), model.config().maxPositionEmbeddings());
    }

    /**
     * The longest sequence (prompt + completion) this scheduler can run: the KV cache budget's
     * positions (unbounded when the caches live on attention workers). A request's default max_tokens
     * runs to here or to the context, whichever is nearer.
     */
    public long maxSequencePositions() {
        return localCaches ? options.kvCacheBytes() / kvBytesPerPosition : Long.MAX_VALUE;
    }

    /**
     * Bytes of KV cache the running sequences may hold together: --kv-cache-mb in this process, the
     * live attention workers' announced budgets added up otherwise (Long.MAX_VALUE: not announced).
     */
    public KvCacheDtype kvCacheDtype() {
        return model.kvCacheDtype();
    }

    /** Whether the model runs steps of several sequences as two overlapped micro-batches. */
    public boolean twoBatchOverlap() {
        return model.twoBatchOverlap();
    }

    public long kvCacheBudget() {
        return localCaches ? options.kvCacheBytes() : model.externalKvCacheBudget();
    }

    /** Sequences preempted since start (their caches dropped to make room, to be recomputed). */
    public long preemptions() {
        return preemptions;
    }

    /** Speculative decoding since start: draft tokens fed to the model, and how many of them were chosen. */
    public long draftTokens() {
        return draftTokens;
    }

    public long acceptedDrafts() {
        return acceptedDrafts;
    }

    /** Starts the engine thread. Tasks submitted before start join the first step together. */
    public Scheduler start() {
        engine.start();
        return this;
    }

    public SchedulerOptions options() {
        return options;
    }

    /**
     * Runs {@code job} on the engine thread once no sequence runs or waits (the forward warm-up: the
     * model is the engine thread's alone). Sequences that arrive meanwhile wait for it to end. A
     * runtime exception it throws is logged; the engine goes on.
     */
    public void runWhenIdle(Runnable job) {
        lock.lock();
        try {
            idleJobs.add(job);
            work.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Queues a sequence; it joins the batch at the next step with a free slot. */
    public void submit(SequenceTask task) {
        submitAll(List.of(task));
    }

    /**
     * Queues all of the sequences or, when they do not fit, none ({@link QueueFullException}). Once
     * shut down or failed ({@link #failed()}), refuses them with {@link SchedulerUnavailableException}.
     */
    public void submitAll(List<? extends SequenceTask> tasks) {
        lock.lock();
        try {
            if (engineFailure != null) {
                throw engineDied();
            }
            if (closed) {
                throw new SchedulerUnavailableException("scheduler is shut down", null);
            }
            if (draining) {
                throw new SchedulerUnavailableException("this coordinator is shutting down: it finishes the "
                        + "requests it has and takes no new ones", null);
            }
            for (SequenceTask t : localCaches ? tasks : List.<SequenceTask>of()) { // workers' budgets: checked by the API
                long bytes = maxPositions(t) * kvBytesPerPosition;
                if ((long) (t.prompt().length + 1) * kvBytesPerPosition > options.kvCacheBytes()) {
                    throw new KvBudgetException(true, "the prompt of " + t.prompt().length + " tokens needs more KV cache "
                            + "than this server's whole budget of " + mib(options.kvCacheBytes())
                            + " MiB (--kv-cache-mb); send a shorter prompt");
                }
                if (bytes > options.kvCacheBytes()) {
                    throw new KvBudgetException(false, "prompt + max tokens reach " + t.maxPositions() + " positions, "
                            + mib(bytes) + " MiB of KV cache, more than this server's whole KV cache budget of "
                            + mib(options.kvCacheBytes()) + " MiB (--kv-cache-mb); ask for fewer tokens");
                }
            }
            int n = tasks.size();
            int waiting = preemptedCount; // cancelled entries leave at the next step boundary: they hold no place
            for (SequenceTask t : queue) {
                waiting += t.cancelled() ? 0 : 1;
            }
            // Refused when more than max-queue of them would have to wait for a batch slot.
            if (activeCount + waiting + n - options.maxBatch() > options.maxQueue()) {
                throw new QueueFullException("request queue is full: " + waiting + " waiting, "
                        + activeCount + " running, " + n + " asked for (max-queue " + options.maxQueue()
                        + ", max-batch " + options.maxBatch() + ")");
            }
            for (SequenceTask t : tasks) {
                String refusal = options.priorityRefusal(t.priority());
                if (refusal != null) {
                    throw new IllegalArgumentException("priority: " + refusal);
                }
            }
            for (SequenceTask t : tasks) { // after those it does not go before: equal priorities keep their arrival order
                int at = queue.size();
                while (at > 0 && queue.get(at - 1).priority() > t.priority()) {
                    at--;
                }
                queue.add(at, t);
            }
            work.signal();
        } finally {
            lock.unlock();
        }
    }

    /** Wakes the engine so it notices a cancellation now rather than after the next step. */
    public void wake() {
        lock.lock();
        try {
            work.signal();
        } finally {
            lock.unlock();
        }
    }

    /** Whether the engine thread died: nothing runs any more and new work is refused (health: NOT_SERVING). */
    public boolean failed() {
        return engineFailure != null;
    }

    /** Sequences holding a batch slot (read from any thread; for health and tests). */
    public int running() {
        return activeCount;
    }

    /** Requests waiting for a slot (preempted ones included). */
    public int waiting() {
        lock.lock();
        try {
            return queue.size() + preemptedCount;
        } finally {
            lock.unlock();
        }
    }

    /** Forward steps run so far. */
    public long steps() {
        return stepStats.steps();
    }

    /** Steps, their wall time and rows since start, one consistent snapshot. */
    public StepStats stepStats() {
        return stepStats;
    }

    /** The prefix cache, or null when it is off. */
    public PrefixStore prefixCache() {
        return prefixCache;
    }

    /** The most sequences one step has carried. */
    public int peakBatch() {
        return peakBatch;
    }

    private void run() {
        try {
            while (true) {
                dropCancelled();
                if (!admit()) {
                    break;
                }
                if (active.isEmpty()) {
                    continue;
                }
                boolean draft = options.speculation().draftsAt(active.size());
                for (Slot s : active) {
                    s.drafts = !draft || !s.task.verifiesDrafts() ? Slot.NONE
                            : options.speculation().mtp() ? s.proposeMtp() : s.propose(options.speculation());
                }
                makeRoom();
                if (!active.isEmpty()) { // every cache that had to grow may have failed to
                    step();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Throwable t) {
            die(t);
        } finally {
            for (Slot s : everyOnce()) {
                s.release();
                s.task.onCancelled();
            }
            active.clear();
            activeCount = 0;
            kvHeldBytes = 0;
            preempted.clear();
            preemptedCount = 0;
        }
    }

    /**
     * The engine loop died of something no one sequence could be blamed for (an Error). Nothing will
     * run again, so running and waiting sequences fail with UNAVAILABLE and later submissions are
     * refused, rather than waiting forever on a thread that is gone.
     */
    private void die(Throwable t) {
        List<SequenceTask> waiting;
        lock.lock();
        try {
            engineFailure = t;
            waiting = new ArrayList<>(queue);
            queue.clear();
        } finally {
            lock.unlock();
        }
        log.error("engine loop died: failing {} running and {} waiting sequence(s), refusing new ones", active.size(),
                waiting.size() + preempted.size(), t);
        SchedulerUnavailableException error = engineDied();
        for (Slot s : everyOnce()) {
            s.release();
            s.task.onFailure(error);
        }
        active.clear();
        preempted.clear();
        preemptedCount = 0;
        for (SequenceTask task : waiting) {
            task.onFailure(error);
        }
    }

    /**
     * The running and the preempted sequences, each once: an Error in the middle of a preemption may
     * leave one in both lists.
     */
    private List<Slot> everyOnce() {
        Set<Slot> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Slot> all = new ArrayList<>();
        for (Slot s : active) {
            if (seen.add(s)) {
                all.add(s);
            }
        }
        for (Slot s : preempted) {
            if (seen.add(s)) {
                all.add(s);
            }
        }
        return all;
    }

    private static long mib(long bytes) {
        return Math.ceilDiv(bytes, 1L << 20);
    }

    private SchedulerUnavailableException engineDied() {
        return new SchedulerUnavailableException("the inference engine failed (" + engineFailure
                + "); this coordinator takes no more requests", engineFailure);
    }

    private void dropCancelled() {
        for (Iterator<Slot> it = active.iterator(); it.hasNext(); ) {
            Slot s = it.next();
            if (s.task.cancelled()) {
                it.remove();
                departures++;
                s.cache.release();
                s.task.onCancelled();
            }
        }
        for (Iterator<Slot> it = preempted.iterator(); it.hasNext(); ) {
            Slot s = it.next();
            if (s.task.cancelled()) {
                it.remove();
                s.task.onCancelled();
            }
        }
        publishActive();
        preemptedCount = preempted.size();
    }

    /**
     * Moves preempted sequences, then queued tasks, into free slots while their prompts fit in the KV
     * cache budget beside what the running ones hold, first come first served; waits while there is
     * nothing to do. A slack of 1% of the budget is kept when others run, so a join is not undone by
     * the next step's growth (vLLM's watermark). A task whose prefix is being read from the disk tier
     * lets those after it go first until it is read. False once closed.
     */
    private boolean admit() throws InterruptedException {
        List<SequenceTask> cancelled = new ArrayList<>();
        List<Slot> joined = new ArrayList<>();
        Runnable idle = null;
        lock.lock();
        try {
            while (true) {
                if (closed) {
                    cancelled.addAll(queue);
                    queue.clear();
                    cancelled.forEach(this::letGoReadAhead);
                    break;
                }
                long budget = kvCacheBudget();
                long kvFree = budget;
                for (Slot s : active) {
                    kvFree -= held(s, grown(s)); // what it holds after its next step
                }
                Map<KvPool, Long> rooms = poolRooms();
                boolean kvFull = false; // once one does not fit, later ones wait too (first come, first served)
                while (!preempted.isEmpty() && active.size() < options.maxBatch()) {
                    if (waitingPriority() < preempted.peek().priority) {
                        break; // by priority, a waiting request of a higher one goes first
                    }
                    if (!active.isEmpty() && departures <= preempted.peek().rejoinAfter) {
                        kvFull = true; // an attention worker had no room: wait until a sequence leaves
                        break;
                    }
                    long took = join(preempted.peek(), kvFree, budget, rooms, joined);
                    if (took < 0) {
                        kvFull = true;
                        break;
                    }
                    kvFree -= took;
                    preempted.poll();
                }
                preemptedCount = preempted.size();
                // Queued tasks that do not come before a preempted sequence still waiting wait after it.
                int before = preempted.isEmpty() ? Integer.MAX_VALUE : preempted.peek().priority;
                for (Iterator<SequenceTask> it = queue.iterator(); it.hasNext(); ) {
                    SequenceTask t = it.next();
                    if (t.cancelled()) {
                        it.remove();
                        cancelled.add(t);
                        letGoReadAhead(t);
                        continue;
                    }
                    // Its prefix on disk is read while it waits, and while it is read the others go ahead.
                    boolean reading = readingPrefix(t);
                    if (kvFull || active.size() >= options.maxBatch() || t.priority() >= before || waitsForSibling(t)
                            || reading) {
                        continue;
                    }
                    long took = join(new Slot(t, arrivals, maxPositions(t)), kvFree, budget, rooms, joined);
                    if (took < 0) {
                        kvFull = true;
                    } else {
                        arrivals++;
                        kvFree -= took;
                        it.remove();
                    }
                }
                publishActive();
                if (!active.isEmpty() || !cancelled.isEmpty()) {
                    break;
                }
                if (queue.isEmpty() && preempted.isEmpty() && !idleJobs.isEmpty()) {
                    idle = idleJobs.poll();
                    break;
                }
                work.await();
            }
        } finally {
            lock.unlock();
        }
        if (idle != null) {
            try {
                idle.run();
            } catch (RuntimeException e) {
                log.warn("an idle-time job failed: {}", e.toString());
            }
            return true;
        }
        for (SequenceTask t : cancelled) {
            t.onCancelled();
        }
        for (Slot s : joined) { // outside the lock: allocating and copying a long prefix take a while
            PrefixCache.ReadAhead read = s.resumed ? null : readingAhead.remove(s.task);
            try {
                s.cache.reserve(joinSize(s)); // prefill chunks then append without regrowing
                if (prefixCache != null && !s.promptLogits() && !s.prefixLost) {
                    s.fed = read != null ? ((PrefixCache) prefixCache).restore(s.feed, s.cache, read)
                            : prefixCache.restore(s.feed, s.cache);
                    read = null;
                }
                if (!s.resumed) {
                    s.task.promptCached(s.fed);
                }
            } catch (RuntimeException | OutOfMemoryError e) {
                // Its own cache did not fit (a long prompt's reservation): this sequence fails, not the engine.
                log.warn("a sequence of {} prompt tokens could not join the batch: {}", s.feed.length, e.toString());
                retire(s);
                s.task.onFailure(e);
            } finally {
                if (read != null) {
                    ((PrefixCache) prefixCache).letGo(read);
                }
            }
        }
        publishActive();
        return !closed;
    }

    /**
     * Whether queued task {@code t} waits for its prompt's blocks to be read from the prefix cache's disk
     * tier. Asked first, it starts that read when there are blocks to read; the engine is woken when
     * it ends. Engine thread.
     */
    private boolean readingPrefix(SequenceTask t) {
        if (!(prefixCache instanceof PrefixCache p) || p.disk() == null || t.wantsPromptLogits()) {
            return false;
        }
        PrefixCache.ReadAhead read = readingAhead.get(t);
        if (read == null) {
            Object group = t.prefixGroup();
            for (Map.Entry<SequenceTask, PrefixCache.ReadAhead> e : readingAhead.entrySet()) {
                if (group != null && e.getValue() != NO_READ && group.equals(e.getKey().prefixGroup())) {
                    return !e.getValue().blocks().isDone(); // a sample of the same prompt reads its blocks
                }
            }
            read = p.readAhead(t.prompt());
            readingAhead.put(t, read == null ? NO_READ : read);
            if (read == null) {
                return false;
            }
            read.blocks().whenComplete((blocks, e) -> wake());
        }
        return !read.blocks().isDone();
    }

    /** {@code t} leaves the queue without joining: what was read ahead for it goes. */
    private void letGoReadAhead(SequenceTask t) {
        PrefixCache.ReadAhead read = readingAhead.remove(t);
        if (read != null) {
            ((PrefixCache) prefixCache).letGo(read);
        }
    }

    /**
     * Gives {@code s} a new cache and a batch slot when its feed fits in {@code kvFree} with the 1%
     * slack (alone, one always joins); returns the bytes it took, or -1 when it must wait. Should making
     * the cache throw, s is still waiting.
     */
    private long join(Slot s, long kvFree, long budget, Map<KvPool, Long> rooms, List<Slot> joined) {
        long need = (long) (joinSize(s) - sharedOnJoining(s)) * kvBytesPerPosition;
        if (!active.isEmpty() && need > kvFree - budget / 100) {
            return -1;
        }
        if (!rooms.isEmpty()) { // it is placed on one attention worker: one must have room for it
            Map.Entry<KvPool, Long> most = Collections.max(rooms.entrySet(), Map.Entry.comparingByValue());
            if (!active.isEmpty() && need > most.getValue()) {
                return -1;
            }
            most.setValue(most.getValue() - need);
        }
        s.cache = model.newCache();
        s.cache.expectAtMost(s.maxPositions);
        active.add(s);
        joined.add(s);
        return need;
    }

    /**
     * Bytes each attention worker that may take a new sequence has left after the next step of the
     * sequences placed there; empty when the caches are in process or no worker announces a budget.
     */
    private Map<KvPool, Long> poolRooms() {
        Map<KvPool, Long> rooms = new LinkedHashMap<>();
        for (KvPool p : model.externalKvPools()) {
            rooms.put(p, p.kvBudgetBytes());
        }
        if (!rooms.isEmpty()) {
            for (Slot s : active) {
                rooms.computeIfPresent(s.cache.pool(), (p, room) -> room - held(s, grown(s)));
            }
        }
        return rooms;
    }

    /**
     * Before a step: grows the caches of sequences whose next token needs room, a page at a time (pages
     * are allocated as they are written, so nothing is copied and nothing is counted ahead), and while
     * that would take more than the KV cache budget, preempts the latest arrival. The earliest always
     * runs, and one sequence alone always fits (checked at submission). A sequence still delivering
     * prompt logits is not preempted (they would come twice).
     */
    private void makeRoom() {
        long budget = kvCacheBudget();
        while (cacheBytes() > budget) {
            Slot victim = latestPreemptible(active);
            if (victim == null) {
                break; // nothing may be preempted: they run, over the budget for this step
            }
            log.info("KV cache budget full ({}): preempting a sequence at {} positions; it resumes by recomputing them",
                    localCaches ? "--kv-cache-mb " + mib(budget) : "the attention workers' " + mib(budget) + " MiB",
                    victim.cache.length());
            preempt(victim);
        }
        makeRoomInPools();
        preemptedCount = preempted.size(); // first: a moved victim is never in neither count
        publishActive();
        for (Slot s : List.copyOf(active)) {
            try {
                s.cache.reserve(grown(s));
            } catch (RuntimeException | OutOfMemoryError e) {
                // The heap is smaller than the budget says: this sequence fails, not the engine.
                log.warn("the KV cache of a sequence at {} positions could not grow: {}", s.cache.length(), e.toString());
                retire(s);
                s.task.onFailure(e);
            }
        }
        publishActive();
    }

    /**
     * Each attention worker holds only its own budget: one that the sequences placed there would
     * outgrow in this step gives up its latest arrivals, though the others have room. They rejoin as
     * the total budget allows and are placed where there is room, so the worker need not refuse.
     * Its earliest sequence is never preempted here (should it alone outgrow the worker, the worker
     * refuses and {@link #makeRoomOnWorkers} ends it).
     */
    private void makeRoomInPools() {
        Map<KvPool, List<Slot>> pools = new LinkedHashMap<>();
        for (Slot s : active) {
            KvPool pool = s.cache.pool();
            if (pool != null && pool.kvBudgetBytes() != Long.MAX_VALUE) {
                pools.computeIfAbsent(pool, p -> new ArrayList<>()).add(s);
            }
        }
        for (Map.Entry<KvPool, List<Slot>> e : pools.entrySet()) {
            long budget = e.getKey().kvBudgetBytes();
            List<Slot> here = e.getValue();
            while (cacheBytes(here) > budget) {
                Slot victim = latestPreemptible(here);
                if (victim == null) {
                    break;
                }
                log.info("attention worker {} full ({} MiB): preempting a sequence at {} positions there; it resumes "
                        + "by recomputing them", e.getKey(), mib(budget), victim.cache.length());
                preempt(victim);
                victim.rejoinAfter = departures; // rejoining before a sequence leaves, it would be placed into a full worker
                here.remove(victim);
            }
        }
    }

    /**
     * Attention workers had no room for some sequences (KV caches on workers: their own budgets). For
     * each worker that refused, the latest arrival among this step's sequences there is preempted, one
     * per worker per step (the step runs again, and a worker still short refuses again); it rejoins
     * once a sequence has left. A sequence with no one to preempt for it, or none of ours left running
     * to make room by finishing, ends RESOURCE_EXHAUSTED, as does one still giving prompt logits.
     */
    private void makeRoomOnWorkers(List<Slot> slots, AttentionUnavailableException e) {
        List<Slot> refused = new ArrayList<>();
        for (Slot s : slots) {
            if (e.noRoom().contains(s.cache)) {
                refused.add(s);
            }
        }
        refused.sort(Slot.ORDER);
        List<Slot> victims = new ArrayList<>();
        Set<KvCache> given = new HashSet<>(); // the victims' caches
        for (Slot s : refused) {
            if (!active.contains(s)) {
                continue; // preempted already, for another sequence on its worker
            }
            Set<KvCache> worker = e.sharingWorkerWith(s.cache);
            if (worker.stream().anyMatch(given::contains)) {
                continue; // its worker has given one up this step
            }
            Slot victim = null;
            for (Slot o : active) {
                if ((o == s || worker.contains(o.cache)) && !o.givingPromptLogits()
                        && (victim == null || Slot.ORDER.compare(o, victim) > 0)) {
                    victim = o;
                }
            }
            if (victim == null || (victim == s && active.size() == 1)) {
                retire(s);
                s.task.onFailure(e.failureOf(s.cache));
                continue;
            }
            log.info("an attention worker has no room ({}): preempting a sequence at {} positions; it resumes by "
                    + "recomputing them once a sequence leaves", e.failureOf(s.cache).getStatus().getDescription(),
                    victim.cache.length());
            given.add(victim.cache);
            preempt(victim);
            victims.add(victim);
        }
        for (Slot v : victims) {
            v.rejoinAfter = departures; // preemptions do not count: one on another worker frees nothing on its
        }
        preemptedCount = preempted.size();
    }

    private long cacheBytes() {
        return cacheBytes(active);
    }

    private long cacheBytes(List<Slot> slots) {
        long total = 0;
        for (Slot s : slots) {
            total += held(s, grown(s));
        }
        return total;
    }

    /**
     * Bytes of KV budget {@code s} takes with {@code capacity} positions: less the pages it shares with
     * kept prefix blocks, which the prefix cache's budget counts (a page shared by running sequences alone,
     * its block evicted, counts in each of them).
     */
    private long held(Slot s, int capacity) {
        return (long) (capacity - s.cache.keptPositions()) * kvBytesPerPosition;
    }

    /**
     * Positions of a joining sequence's prompt that it will share with kept prefix blocks: the prefix
     * hit it starts from (on attention workers, on the worker it would be placed on).
     */
    private int sharedOnJoining(Slot s) {
        return prefixCache != null && !s.promptLogits() && !s.prefixLost ? prefixCache.matchedTokens(s.feed, joinSize(s)) : 0;
    }

    /** What metrics read of the running set: its size and the KV cache memory it holds (engine thread). */
    private void publishActive() {
        long bytes = 0;
        for (Slot s : active) {
            bytes += held(s, s.cache.capacity());
        }
        kvHeldBytes = bytes;
        activeCount = active.size(); // last: who reads running() first then sees the bytes that go with it
    }

    /**
     * Bytes of KV cache the running sequences hold: in this process, or reserved on attention workers
     * by this coordinator's count; the prefix cache's blocks are apart (and so are the pages running
     * sequences in this process share with them).
     */
    public long kvCacheBytes() {
        return kvHeldBytes;
    }

    /** Drops the sequence's cache and moves it to the preempted, to rejoin by recomputing. */
    private void preempt(Slot victim) {
        victim.preempt();
        preempted.add(victim); // never in neither list: its client would wait forever
        active.remove(victim);
        preemptions++;
    }

    /**
     * Among {@code slots}, the last in {@link Slot#ORDER} (the latest arrival of the lowest priority) that is
     * not the first and not giving prompt logits; null when none is.
     */
    private static Slot latestPreemptible(List<Slot> slots) {
        if (slots.isEmpty()) {
            return null;
        }
        Slot first = Collections.min(slots, Slot.ORDER);
        Slot victim = null;
        for (Slot s : slots) {
            if (!s.givingPromptLogits() && s != first && (victim == null || Slot.ORDER.compare(s, victim) > 0)) {
                victim = s;
            }
        }
        return victim;
    }

    /** The priority of the first waiting task not cancelled (Integer.MAX_VALUE when none); lock held. */
    private int waitingPriority() {
        for (SequenceTask t : queue) {
            if (!t.cancelled()) {
                return t.priority();
            }
        }
        return Integer.MAX_VALUE;
    }

    /** What a joining sequence reserves: its feed and first token ({@link Slot#joinSize}), and the chain's positions past them. */
    private int joinSize(Slot s) {
        return (int) Math.min(s.maxPositions, (long) s.joinSize() + chainAhead);
    }

    /**
     * Capacity a sequence's cache needs for this step, within its own maximum: as it is when its next
     * token fits (prefill reserved its feed on joining), else grown to the page that holds it.
     */
    private int grown(Slot s) {
        int capacity = s.cache.capacity();
        int need = s.prefilling() ? capacity : s.cache.length() + 1 + s.drafts.length + chainAhead;
        return HeapKvCache.grownCapacity(capacity, need, s.maxPositions);
    }

    /**
     * Prompt positions each prefilling sequence feeds in this step, within {@code budget}: first an
     * equal share each (in arrival order), then what is left in arrival order. So a long prompt
     * cannot hold back the prompts that arrive after it until it is all in: they get their share
     * at once, and alone it still takes the whole budget.
     */
    static int[] prefillShares(List<Slot> prefilling, int budget) {
        int[] take = new int[prefilling.size()];
        if (prefilling.isEmpty()) {
            return take;
        }
        int share = Math.max(1, budget / prefilling.size());
        for (int pass = 0; pass < 2 && budget > 0; pass++) {
            for (int i = 0; i < take.length && budget > 0; i++) {
                Slot s = prefilling.get(i);
                int want = s.feed.length - s.fed;
                if (s.promptLogits()) {
                    want = Math.min(want, PROMPT_LOGITS_ROWS); // each row brings a vocabulary of logits
                }
                int n = Math.min(Math.min(want - take[i], budget), pass == 0 ? share : Integer.MAX_VALUE);
                take[i] += n;
                budget -= n;
            }
        }
        return take;
    }

    /** One batched forward step over all active sequences. */
    private void step() {
        List<SequenceChunk> chunks = new ArrayList<>(active.size());
        List<Slot> slots = new ArrayList<>(active.size());
        int[] lengths = new int[active.size()];
        for (Slot s : active) {
            if (!s.prefilling()) {
                // With drafts, the step also feeds them and returns every position's logits to check them.
                int[] feed = new int[1 + s.drafts.length];
                feed[0] = s.next;
                System.arraycopy(s.drafts, 0, feed, 1, s.drafts.length);
                lengths[slots.size()] = feed.length;
                chunks.add(new SequenceChunk(s.cache, feed, s.cache.length(), s.drafts.length > 0));
                slots.add(s);
            }
        }
        List<Slot> prefilling = new ArrayList<>();
        for (Slot s : active) {
            if (s.prefilling()) {
                prefilling.add(s);
            }
        }
        int[] take = prefillShares(prefilling, options.prefillBudget());
        for (int i = 0; i < prefilling.size(); i++) {
            Slot s = prefilling.get(i);
            int n = take[i];
            if (n > 0) {
                lengths[slots.size()] = n;
                chunks.add(new SequenceChunk(s.cache, Arrays.copyOfRange(s.feed, s.fed, s.fed + n), s.fed,
                        s.promptLogits()));
                slots.add(s);
            }
        }
        List<float[]> logits;
        float[] hidden = null; // with MTP drafting: every row's final hidden state, for its layer
        long t0 = System.nanoTime();
        try {
            if (options.speculation().mtp()) {
                Transformer.Output out = model.stepWithHidden(chunks);
                logits = out.logits();
                hidden = out.hidden();
            } else {
                logits = model.step(chunks);
            }
        } catch (AttentionUnavailableException e) {
            // Sequences whose attention cannot go on end, each with its own status; the step runs
            // again for the rest next time (same positions: their caches are simply written again).
            log.warn("step over {} sequence(s): {} lost, {} without room, {} to recompute a lost prefix, the rest run "
                    + "again: {}", slots.size(), e.lost().size(), e.noRoom().size(), e.restart().size(), e.getMessage());
            List<Slot> restart = new ArrayList<>();
            for (Slot s : slots) {
                if (e.lost().contains(s.cache)) {
                    retire(s);
                    s.task.onFailure(e.failureOf(s.cache));
                } else if (e.restart().contains(s.cache)) {
                    restart.add(s);
                }
            }
            makeRoomOnWorkers(slots, e);
            for (Slot s : restart) {
                // The prefix blocks it started from are gone or refused: it recomputes them, joining again
                // at once, without restoring (a worker that refused it is not tried again for them), and
                // as new, since nothing was computed for it: its usage then counts no cached tokens.
                s.prefixLost = true;
                if (active.contains(s)) {
                    preempt(s);
                    s.resumed = false;
                }
            }
            publishActive();
            return;
        } catch (RuntimeException | OutOfMemoryError e) {
            // Out of memory here (caches growing, the step's buffers) is not one sequence's doing: the
            // step's sequences fail and release their caches; the engine goes on with the others.
            log.warn("step over {} sequence(s) failed: {}", slots.size(), e.toString());
            for (Slot s : slots) {
                retire(s);
                s.task.onFailure(e);
            }
            publishActive();
            return;
        }
        int decodeRows = 0;
        int prefillRows = 0;
        for (int i = 0; i < slots.size(); i++) {
            if (slots.get(i).prefilling()) {
                prefillRows += lengths[i];
            } else {
                decodeRows += lengths[i];
            }
        }
        stepStats = stepStats.plus(System.nanoTime() - t0, decodeRows, prefillRows, expertStats.get());
        peakBatch = Math.max(peakBatch, slots.size());
        if (log.isDebugEnabled()) {
            log.debug("step {}: {} sequence(s), {} rows", stepStats.steps(), slots.size(), decodeRows + prefillRows);
        }
        for (int i = 0; i < slots.size(); i++) {
            Slot s = slots.get(i);
            if (s.prefilling() && s.promptLogits()) {
                float[] rows = logits.get(i);
                try {
                    s.task.onPromptLogits(s.fed, rows, lengths[i]);
                } catch (RuntimeException | OutOfMemoryError e) {
                    retire(s);
                    s.task.onFailure(e);
                    continue;
                }
                int vocab = rows.length / lengths[i];
                logits.set(i, Arrays.copyOfRange(rows, rows.length - vocab, rows.length)); // the last: the first choice
            }
            if (s.prefilling()) {
                s.fed += lengths[i];
                if (!s.prefilling() && prefixCache != null) {
                    keep(s.feed, s.cache);
                }
            } else {
                s.addGenerated(s.next); // now in the cache
            }
        }
        Choices choices = Choices.of(slots, logits);
        for (int i = 0; i < slots.size(); i++) {
            Slot s = slots.get(i);
            if (s.prefilling()) {
                continue; // a middle chunk of the prompt: its logits are not needed
            }
            if (s.drafts.length > 0) {
                verify(s, logits.get(i));
                continue;
            }
            int next;
            try {
                next = choices.next(i, s.task, logits.get(i));
            } catch (RuntimeException | OutOfMemoryError e) { // e.g. a Logits task holding every step's logits
                retire(s);
                s.task.onFailure(e);
                continue;
            }
            if (next < 0) {
                keepPrefix(s);
                retire(s);
            } else {
                s.next = next;
            }
        }
        if (hidden != null) {
            try {
                draftWithMtp(slots, chunks, hidden);
                for (Keep k : toKeep) {
                    prefixCache.store(k.tokens(), k.cache());
                }
            } finally {
                toKeep.clear();
                // Their caches go now, after the MTP layer and the kept blocks took what they needed (on an
                // attention worker a released cache is freed before the next message's segments run).
                finishedThisStep.forEach(s -> s.cache.release());
                finishedThisStep.clear();
            }
        }
        publishActive();
    }

    /**
     * With MTP drafting, after the step's choices: the MTP layer takes every position the step kept,
     * with the token that now follows it (the next fed, a kept draft, or the token just chosen), so its
     * cache layer is as complete as the others; each decoding sequence's last row gives its draft for
     * the next step, the MTP logits' argmax (as vLLM and SGLang draft). A sequence that ended in the
     * step has its positions but the last taken too, for the blocks it leaves in the prefix cache.
     */
    private void draftWithMtp(List<Slot> slots, List<SequenceChunk> chunks, float[] hidden) {
        boolean drafting = options.speculation().draftsAt(active.size());
        List<Mtp.Chunk> work = new ArrayList<>(slots.size());
        List<Slot> drafted = new ArrayList<>(slots.size());
        int row = 0;
        for (int i = 0; i < slots.size(); i++) {
            Slot s = slots.get(i);
            SequenceChunk ch = chunks.get(i);
            int firstRow = row;
            row += ch.tokens().length;
            s.mtpDrafts = Slot.NONE;
            boolean running = active.contains(s);
            if (!running && !finishedThisStep.contains(s)) {
                continue; // failed in this step
            }
            int kept = s.cache.length() - ch.start();
            int rows = running ? kept : kept - 1; // an ended sequence's last token has nothing after it
            if (rows == 0) {
                continue;
            }
            int[] after = new int[rows];
            System.arraycopy(ch.tokens(), 1, after, 0, Math.min(rows, kept - 1));
            if (running) {
                after[rows - 1] = s.prefilling() ? s.feed[s.fed] : s.next;
            }
            boolean logits = running && drafting && !s.prefilling() && s.task.verifiesDrafts();
            work.add(new Mtp.Chunk(s.cache, ch.start(), after, hidden, firstRow, logits));
            drafted.add(s);
        }
        while (!work.isEmpty()) {
            try {
                chain(drafted, model.mtp().step(work));
                return;
            } catch (AttentionUnavailableException e) {
                if (!dropLost(e, work, drafted)) {
                    fail(drafted, e);
                    return;
                }
            } catch (RuntimeException | OutOfMemoryError e) {
                fail(drafted, e);
                return;
            }
        }
    }

    /**
     * An attention worker failed in the MTP layer's pass: the sequences it held end with its status,
     * as in a failed main step, and leave {@code work} and {@code drafted}; the others take the pass
     * again (their MTP rows are written again, the same). False when it named none to end.
     */
    private boolean dropLost(AttentionUnavailableException e, List<Mtp.Chunk> work, List<Slot> drafted) {
        Set<KvCache> gone = new HashSet<>(e.lost());
        gone.addAll(e.restart());
        gone.addAll(e.noRoom());
        boolean any = false;
        for (int i = work.size() - 1; i >= 0; i--) {
            Slot s = drafted.get(i);
            if (gone.contains(s.cache)) {
                any = true;
                work.remove(i);
                drafted.remove(i);
                toKeep.removeIf(k -> k.cache() == s.cache);
                if (active.contains(s)) {
                    retire(s);
                    s.task.onFailure(e.failureOf(s.cache));
                }
            }
        }
        log.warn("MTP drafting: {} sequence(s) lost with their attention worker, {} take the pass again: {}",
                gone.size(), work.size(), e.getMessage());
        return any;
    }

    /** Not one sequence's doing either: those whose MTP layer could not run end as a failed step's do. */
    private void fail(List<Slot> drafted, Throwable e) {
        log.warn("MTP drafting over {} sequence(s) failed: {}", drafted.size(), e.toString());
        toKeep.clear(); // their MTP layer is not complete
        for (Slot s : drafted) {
            if (active.contains(s)) {
                retire(s);
                s.task.onFailure(e);
            }
        }
    }

    /**
     * The drafts from the MTP layer's first pass ({@code first}, per sequence of {@code drafted}), chained to
     * up to --num-speculative-tokens: the layer runs again one position further on, on its own output and
     * the token it just drafted (its rows there are written over once the main model has computed them).
     */
    private void chain(List<Slot> drafted, List<Mtp.Draft> first) {
        int depth = options.speculation().tokens();
        List<Slot> going = new ArrayList<>();
        List<Mtp.Draft> last = new ArrayList<>();
        for (int i = 0; i < drafted.size(); i++) {
            Slot s = drafted.get(i);
            Mtp.Draft d = first.get(i);
            if (d != null) {
                // As many as the cache has room for after the pending token.
                int most = Math.min(depth, s.maxPositions - s.cache.length() - 1);
                s.mtpDrafts = new int[Math.max(0, most)];
                if (most > 0) {
                    s.mtpDrafts[0] = VectorOps.argmax(d.logits());
                    going.add(s);
                    last.add(d);
                }
            }
        }
        for (int k = 1; !going.isEmpty(); k++) {
            List<Mtp.Chunk> next = new ArrayList<>();
            List<Slot> still = new ArrayList<>();
            List<Mtp.Draft> from = new ArrayList<>();
            for (int i = 0; i < going.size(); i++) {
                Slot s = going.get(i);
                if (k < s.mtpDrafts.length) {
                    // At the pending token's position k - 1 on: the draft before this one follows it (the
                    // step reserved those positions: chainAhead).
                    next.add(new Mtp.Chunk(s.cache, s.cache.length() + k - 1, new int[] {s.mtpDrafts[k - 1]},
                            last.get(i).hidden(), 0, true));
                    still.add(s);
                }
            }
            if (next.isEmpty()) {
                return;
            }
            List<Mtp.Draft> out = model.mtp().step(next);
            for (int i = 0; i < still.size(); i++) {
                still.get(i).mtpDrafts[k] = VectorOps.argmax(out.get(i).logits());
                from.add(out.get(i));
            }
            going = still;
            last = from;
        }
    }

    /**
     * Speculative decoding: the step fed the pending token and its drafts, and {@code rows} are their
     * logits. In order, each row chooses the token after its position; while that is the draft fed
     * next, the draft stays in the cache and the next row chooses. The first other choice becomes
     * the pending token, and the cache drops the drafts after it. Each choice is made as without
     * drafts (see {@link SequenceTask#verifiesDrafts()}), so only the speed differs.
     */
    private void verify(Slot s, float[] rows) {
        int[] drafts = s.drafts;
        s.drafts = Slot.NONE;
        int vocab = rows.length / (drafts.length + 1);
        int start = s.cache.length() - drafts.length; // the position after the pending token
        int kept = 0;
        int chosen = 0; // drafts that were the token chosen, the one a sequence ends on included
        int next = -1;
        try {
            for (int j = 0; j <= drafts.length; j++) {
                int draft = j < drafts.length ? drafts[j] : -1;
                int token = s.task.choose(Arrays.copyOfRange(rows, j * vocab, (j + 1) * vocab));
                if (token == draft) {
                    chosen++;
                }
                next = s.task.accept(token);
                if (next < 0 || token != draft) {
                    break;
                }
                s.addGenerated(token); // in the cache already, at start + j
                kept++;
            }
        } catch (RuntimeException | OutOfMemoryError e) {
            retire(s);
            s.task.onFailure(e);
            return;
        } finally {
            draftTokens += drafts.length;
            acceptedDrafts += chosen;
        }
        s.cache.setLength(start + kept);
        if (next < 0) {
            keepPrefix(s);
            retire(s);
        } else {
            s.next = next;
        }
    }

    /**
     * A sample of a prompt whose sibling is still prefilling waits for it, to start from its cached
     * blocks, but only where waiting helps: the prompt has whole blocks to restore and they fit in the cache.
     */
    private boolean waitsForSibling(SequenceTask t) {
        Object group = t.prefixGroup();
        if (prefixCache == null || group == null || t.wantsPromptLogits() || !prefixCache.canHold(t.prompt().length)) {
            return false;
        }
        for (Slot s : active) {
            if (s.prefilling() && group.equals(s.task.prefixGroup())) {
                return true;
            }
        }
        return false;
    }

    /**
     * A finished sequence's prompt and answer go to the prefix cache, so the next turn of a chat (whose
     * prompt repeats this one and, re-rendered, usually the answer) starts from them.
     */
    private void keepPrefix(Slot s) {
        if (prefixCache == null) {
            return;
        }
        if (options.speculation().mtp()) {
            finishedThisStep.add(s); // its MTP layer takes this step's positions first, for the blocks kept
        }
        if (s.generatedCount() > 0) {
            keep(s.sequence(), s.cache);
        }
    }

    /**
     * Keeps {@code tokens}' blocks in the prefix cache. With MTP drafting that waits until the step's
     * MTP layer has run ({@link #draftWithMtp}), and the last position stays out: its MTP entry needs
     * the token after it.
     */
    private void keep(int[] tokens, KvCache cache) {
        if (options.speculation().mtp()) {
            toKeep.add(new Keep(Arrays.copyOf(tokens, tokens.length - 1), cache));
        } else {
            prefixCache.store(tokens, cache);
        }
    }

    private record Keep(int[] tokens, KvCache cache) {}

    /** The sequence leaves its batch slot: its cache goes (on an attention worker, it is released there). */
    private void retire(Slot s) {
        active.remove(s);
        departures++;
        if (!finishedThisStep.contains(s)) { // else once the step's MTP layer has run (step)
            s.cache.release();
        }
    }

    /**
     * The tokens of a step's sequences that choose in parallel, sampled on the kernel pool (a default
     * top-p draw over 129k logits is about 0.25 ms, so 32 sequences cost 8 ms one after another).
     * Failures stay with their sequence.
     */
    private record Choices(int[] tokens, RuntimeException[] errors, boolean[] chosen) {
        static Choices of(List<Slot> slots, List<float[]> logits) {
            int n = slots.size();
            Choices c = new Choices(new int[n], new RuntimeException[n], new boolean[n]);
            int[] which = new int[n];
            int count = 0;
            long work = 0;
            for (int i = 0; i < n; i++) {
                Slot s = slots.get(i);
                if (!s.prefilling() && s.task.choosesInParallel() && s.drafts.length == 0) {
                    which[count++] = i;
                    work += 16L * logits.get(i).length; // ~16 vector ops per logit (scale, exp, sums, filters)
                }
            }
            int m = count;
            Parallel.forRange(m, 1, work, (a, b) -> {
                for (int j = a; j < b; j++) {
                    int i = which[j];
                    try {
                        c.tokens[i] = slots.get(i).task.choose(logits.get(i));
                    } catch (RuntimeException e) {
                        c.errors[i] = e;
                    }
                    c.chosen[i] = true;
                }
            });
            return c;
        }

        /** Row i's next token: its parallel choice accepted, or the task's own onLogits. */
        int next(int i, SequenceTask task, float[] logits) {
            if (!chosen[i]) {
                return task.onLogits(logits);
            }
            if (errors[i] != null) {
                throw errors[i];
            }
            return task.accept(tokens[i]);
        }
    }

    /**
     * Takes no new sequences (UNAVAILABLE) and waits up to {@code timeoutNanos} for the queued and running
     * ones to end; returns whether they all did. {@link #close} then cancels what is left.
     */
    public boolean drain(long timeoutNanos) throws InterruptedException {
        lock.lock();
        try {
            draining = true;
        } finally {
            lock.unlock();
        }
        long deadline = System.nanoTime() + timeoutNanos;
        while (outstanding() > 0) {
            long left = deadline - System.nanoTime();
            if (left <= 0 || failed() || closed) {
                return false;
            }
            Thread.sleep(Math.min(20, Math.max(1, left / 1_000_000)));
        }
        return !failed() && !closed;
    }

    /**
     * Sequences queued, preempted or running, counted under the lock: admission moves a sequence from
     * the queue into the batch within it, so none is missed between the two counts.
     */
    private int outstanding() {
        lock.lock();
        try {
            return queue.size() + preemptedCount + activeCount;
        } finally {
            lock.unlock();
        }
    }

    /** Stops the engine: waiting and running sequences are cancelled. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            work.signal();
        } finally {
            lock.unlock();
        }
        try {
            if (engine.isAlive()) {
                engine.join(30_000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (prefixCache instanceof PrefixCache p && p.disk() != null) {
            p.disk().close(); // what is queued is written, for the next start to find
        }
    }
}
