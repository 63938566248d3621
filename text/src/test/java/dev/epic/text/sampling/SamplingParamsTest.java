package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

class SamplingParamsTest {

    @Test
    void defaults() {
        SamplingParams p = SamplingParams.defaults();
        assertEquals(0.6, p.temperature());
        assertEquals(0.95, p.topP());
        assertEquals(0, p.topK());
        assertEquals(0, p.minP());
        assertTrue(p.seed().isEmpty());
        assertEquals(1.0, p.repetitionPenalty());
        assertTrue(p.skipSpecialTokens());
    }

    @Test
    void rejectsOutOfRangeFieldsNamingThem() {
        expect("max_tokens", b -> b.maxTokens(0));
        expect("max_tokens", b -> b.maxTokens(-5));
        expect("top_p", b -> b.topP(0));
        expect("top_p", b -> b.topP(1.01));
        expect("top_p", b -> b.topP(Double.NaN));
        expect("temperature", b -> b.temperature(-0.1));
        expect("temperature", b -> b.temperature(Double.NaN));
        expect("top_k", b -> b.topK(-2));
        expect("min_p", b -> b.minP(-0.01));
        expect("min_p", b -> b.minP(1.5));
        expect("presence_penalty", b -> b.presencePenalty(2.5));
        expect("frequency_penalty", b -> b.frequencyPenalty(-2.01));
        expect("repetition_penalty", b -> b.repetitionPenalty(0));
        expect("repetition_penalty", b -> b.repetitionPenalty(-1));
        expect("stop", b -> b.stop(List.of("ok", "")));
        expect("stop_token_ids", b -> b.stopTokenIds(Set.of(-3)));
        expect("logprobs", b -> b.logprobs(21));
        expect("logprobs", b -> b.logprobs(-2));
        expect("prompt_logprobs", b -> b.promptLogprobs(21));
        expect("min_tokens", b -> b.minTokens(-1));
        expect("min_tokens", b -> b.maxTokens(5).minTokens(6));
    }

    @Test
    void acceptsBoundaries() {
        SamplingParams.builder().topP(1).temperature(0).topK(-1).minP(1).presencePenalty(-2).frequencyPenalty(2)
                .repetitionPenalty(0.01).maxTokens(1).logprobs(20).build();
        SamplingParams.builder().logprobs(0).build();
    }

    /** A gRPC float arrives widened: the message shows 1.1, not 1.100000023841858; a double shows as it is. */
    @Test
    void messagesShowValuesAsTheClientWroteThem() {
        InvalidSamplingException e = assertThrows(InvalidSamplingException.class,
                () -> SamplingParams.builder().topP((double) 1.1f).build());
        assertTrue(e.getMessage().endsWith("got 1.1"), e.getMessage());
        e = assertThrows(InvalidSamplingException.class, () -> SamplingParams.builder().temperature(-0.3).build());
        assertTrue(e.getMessage().endsWith("got -0.3"), e.getMessage());
        e = assertThrows(InvalidSamplingException.class,
                () -> SamplingParams.builder().presencePenalty((double) 2.2f).build());
        assertTrue(e.getMessage().endsWith("got 2.2"), e.getMessage());
    }

    private static void expect(String field, Consumer<SamplingParams.Builder> change) {
        SamplingParams.Builder b = SamplingParams.builder();
        change.accept(b);
        InvalidSamplingException e = assertThrows(InvalidSamplingException.class, b::build);
        assertEquals(field, e.field());
        assertTrue(e.getMessage().startsWith(field + ":"), e.getMessage());
    }
}
