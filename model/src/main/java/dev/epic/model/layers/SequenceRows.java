package dev.epic.model.layers;

import dev.epic.model.KvCache;

/** Rows [firstRow, firstRow + length) of a step belong to one sequence and sit at positions start, start+1, ... */
public record SequenceRows(KvCache cache, int start, int firstRow, int length) {
    public int position(int row) {
        return start + row - firstRow;
    }
}
