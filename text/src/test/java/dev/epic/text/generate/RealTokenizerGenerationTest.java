package dev.epic.text.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.Golden;
import dev.epic.text.output.DeepSeekMarkers;
import dev.epic.text.output.ReasoningMode;
import dev.epic.text.output.StreamingDecoder;
import dev.epic.text.output.ToolCall;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The output pipeline over the real DeepSeek-V3 vocabulary (and the R1 variant with single-token think tags). */
class RealTokenizerGenerationTest {
    private static final int LM_HEAD_ROWS = 129_280;
    private static final SamplingParams GREEDY = SamplingParams.builder().temperature(0).build();

    @Test
    void streamingDecodeMatchesGoldenDecodeTokenByToken() {
        Tokenizer tok = Tokenizer.deepSeekV3();
        for (JsonNode line : Golden.lines("decode.jsonl")) {
            int[] ids = Golden.ints(line.get("ids"));
            boolean skip = line.get("skip_special_tokens").asBoolean();
            StreamingDecoder d = new StreamingDecoder(tok, skip, id -> false);
            StringBuilder text = new StringBuilder();
            for (int id : ids) {
                text.append(d.push(id));
            }
            text.append(d.finish());
            assertEquals(line.get("text").asText(), text.toString(), line.get("id").asText());
        }
    }

    @Test
    void v3VocabularySplitsThinkTagsAndTheParserStillFindsThem() {
        Tokenizer v3 = Tokenizer.deepSeekV3();
        int[] close = v3.encode(DeepSeekMarkers.THINK_CLOSE);
        assertTrue(close.length > 1, "in the V3 vocabulary </think> is plain text: " + Arrays.toString(close));
        GenerationResult r = replay(v3, ReasoningMode.DETECT, "<think>\nplan: add\n</think>\n\n2 + 2 = 4");
        assertEquals("\nplan: add\n", r.reasoning());
        assertEquals("\n\n2 + 2 = 4", r.content());
        assertEquals(FinishReason.EOS, r.finishReason());
    }

    @Test
    void r1VocabularyThinkTagsAreSingleTokens(@TempDir Path dir) throws IOException {
        Tokenizer r1 = Tokenizer.fromModelDir(Golden.writeR1TokenizerDir(dir));
        int closeId = r1.addedTokenId(DeepSeekMarkers.THINK_CLOSE).orElseThrow();
        int[] ids = r1.encode("plan: add\n</think>\n\n2 + 2 = 4");
        assertTrue(Arrays.stream(ids).anyMatch(i -> i == closeId), "</think> is one added token");
        GenerationResult r = replay(r1, ReasoningMode.OPEN, "plan: add\n</think>\n\n2 + 2 = 4");
        assertEquals("plan: add\n", r.reasoning());
        assertEquals("\n\n2 + 2 = 4", r.content());
    }

    @Test
    void toolCallsFromRealTokens() {
        Tokenizer v3 = Tokenizer.deepSeekV3();
        String out = "Let me look." + DeepSeekMarkers.TOOL_CALLS_BEGIN + DeepSeekMarkers.TOOL_CALL_BEGIN + "function"
                + DeepSeekMarkers.TOOL_SEP + "get_weather\n```json\n{\"location\": \"北京\", \"unit\": \"c\"}\n```"
                + DeepSeekMarkers.TOOL_CALL_END + "\n" + DeepSeekMarkers.TOOL_CALL_BEGIN + "function"
                + DeepSeekMarkers.TOOL_SEP + "get_time\n```json\n{\"tz\": \"Asia/Shanghai\"}\n```"
                + DeepSeekMarkers.TOOL_CALL_END + DeepSeekMarkers.TOOL_CALLS_END;
        GenerationResult r = replay(v3, ReasoningMode.DETECT, out);
        assertEquals("Let me look.", r.content());
        assertEquals(List.of("get_weather", "get_time"), r.toolCalls().stream().map(ToolCall::name).toList());
        assertEquals("{\"location\": \"北京\", \"unit\": \"c\"}", r.toolCalls().get(0).arguments());
        assertTrue(r.toolCalls().stream().allMatch(ToolCall::ok));
        assertEquals(FinishReason.TOOL_CALLS, r.finishReason());
    }

    /** Encodes {@code output} + EOS and replays it greedily through the generation loop with a 129,280-row head. */
    private static GenerationResult replay(Tokenizer tok, ReasoningMode mode, String output) {
        int[] prompt = tok.encodeWithBos("<｜User｜>hi<｜Assistant｜>");
        int[] body = tok.encode(output);
        int[] script = Arrays.copyOf(body, body.length + 1);
        script[body.length] = tok.eosId().orElseThrow();
        ScriptedLogits model = new ScriptedLogits(tok.size(), LM_HEAD_ROWS, prompt, script);
        List<Delta> deltas = new ArrayList<>();
        Generation g = new Generation(tok, prompt, GREEDY, GenerationOptions.defaults().withReasoning(mode));
        GenerationResult r = GenerationLoop.run(model, prompt, g, deltas::add, () -> false);
        assertEquals(script.length, r.usage().completionTokens());
        return r;
    }
}
