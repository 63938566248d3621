package dev.epic.model;

/**
 * Memory that holds some sequences' KV caches under a budget of its own, such as one attention
 * worker's: a scheduler keeps the caches it places there within it, besides its total budget.
 */
public interface KvPool {
    /** Bytes of KV cache it holds at most; Long.MAX_VALUE when it has no budget. */
    long kvBudgetBytes();
}
