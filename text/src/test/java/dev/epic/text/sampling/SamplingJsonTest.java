package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SamplingJsonTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static SamplingParams read(String json) throws Exception {
        return SamplingJson.read(JSON.readTree(json));
    }

    @Test
    void readsOpenAiAndVllmFields() throws Exception {
        SamplingParams p = read("""
                {"model": "x", "messages": [], "temperature": 0.2, "top_p": 0.5, "top_k": 40, "min_p": 0.1,
                 "seed": 7, "presence_penalty": 0.3, "frequency_penalty": -0.4, "repetition_penalty": 1.2,
                 "max_tokens": 99, "stop": ["a", "b"], "stop_token_ids": [5, 6], "ignore_eos": true,
                 "skip_special_tokens": false}""");
        assertEquals(0.2, p.temperature());
        assertEquals(0.5, p.topP());
        assertEquals(40, p.topK());
        assertEquals(0.1, p.minP());
        assertEquals(7, p.seed().getAsLong());
        assertEquals(0.3, p.presencePenalty());
        assertEquals(-0.4, p.frequencyPenalty());
        assertEquals(1.2, p.repetitionPenalty());
        assertEquals(99, p.maxTokens());
        assertEquals(List.of("a", "b"), p.stop());
        assertEquals(Set.of(5, 6), p.stopTokenIds());
        assertTrue(p.ignoreEos());
        assertEquals(false, p.skipSpecialTokens());
    }

    @Test
    void absentAndNullKeepDefaults() throws Exception {
        assertEquals(SamplingParams.defaults(), read("{\"temperature\": null, \"stop\": null}"));
        assertEquals(List.of("END"), read("{\"stop\": \"END\"}").stop());
        assertEquals(12, read("{\"max_completion_tokens\": 12, \"max_tokens\": 99}").maxTokens());
    }

    @Test
    void logprobsAsACountOrAsChatCompletionsAsks() throws Exception {
        assertEquals(-1, read("{}").logprobs());
        assertEquals(3, read("{\"logprobs\": 3}").logprobs());
        assertEquals(0, read("{\"logprobs\": true}").logprobs());
        assertEquals(5, read("{\"logprobs\": true, \"top_logprobs\": 5}").logprobs());
        assertEquals(-1, read("{\"logprobs\": false}").logprobs());
        assertEquals("top_logprobs", assertThrows(InvalidSamplingException.class,
                () -> read("{\"logprobs\": false, \"top_logprobs\": 5}")).field());
        assertEquals("top_logprobs", assertThrows(InvalidSamplingException.class, () -> read("{\"top_logprobs\": 5}")).field());
        assertEquals("logprobs", assertThrows(InvalidSamplingException.class, () -> read("{\"logprobs\": 50}")).field());
        assertEquals(4, read("{\"prompt_logprobs\": 4}").promptLogprobs());
        assertEquals(-1, read("{}").promptLogprobs());
        SamplingParams p = read("{\"min_tokens\": 7, \"include_stop_str_in_output\": true}");
        assertEquals(7, p.minTokens());
        assertTrue(p.includeStopStrInOutput());
    }

    @Test
    void wrongTypesAndRangesNameTheField() {
        assertEquals("temperature", assertThrows(InvalidSamplingException.class, () -> read("{\"temperature\": \"hot\"}")).field());
        assertEquals("max_tokens", assertThrows(InvalidSamplingException.class, () -> read("{\"max_tokens\": 1.5}")).field());
        assertEquals("max_tokens", assertThrows(InvalidSamplingException.class, () -> read("{\"max_tokens\": 0}")).field());
        assertEquals("stop", assertThrows(InvalidSamplingException.class, () -> read("{\"stop\": [1]}")).field());
        assertEquals("seed", assertThrows(InvalidSamplingException.class, () -> read("{\"seed\": \"x\"}")).field());
        assertEquals("top_p", assertThrows(InvalidSamplingException.class, () -> read("{\"top_p\": 0}")).field());
        assertEquals("ignore_eos", assertThrows(InvalidSamplingException.class, () -> read("{\"ignore_eos\": 1}")).field());
    }
}
