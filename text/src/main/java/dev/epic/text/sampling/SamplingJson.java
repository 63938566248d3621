package dev.epic.text.sampling;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Reads the sampling fields of an OpenAI-style request body (vLLM extensions included) into SamplingParams.
 * Absent or null fields keep their defaults; a field of the wrong type or out of range is an
 * {@link InvalidSamplingException} naming it. Fields that are not about sampling are ignored.
 */
public final class SamplingJson {
    private SamplingJson() {
    }

    /**
     * Fields: temperature, top_p, top_k, min_p, seed, presence_penalty, frequency_penalty, repetition_penalty,
     * max_tokens (or max_completion_tokens), stop (string or array), stop_token_ids, ignore_eos,
     * skip_special_tokens, logprobs (a count, or true with top_logprobs), prompt_logprobs, min_tokens,
     * include_stop_str_in_output.
     */
    public static SamplingParams read(JsonNode body) {
        return read(body, SamplingParams.builder());
    }

    /** As {@link #read(JsonNode)} over server-side defaults. */
    public static SamplingParams read(JsonNode body, SamplingParams.Builder defaults) {
        if (body == null || !body.isObject()) {
            throw new InvalidSamplingException("body", "request body must be a JSON object");
        }
        SamplingParams.Builder b = defaults;
        if (present(body, "temperature")) {
            b.temperature(number(body, "temperature"));
        }
        if (present(body, "top_p")) {
            b.topP(number(body, "top_p"));
        }
        if (present(body, "top_k")) {
            b.topK(integer(body, "top_k"));
        }
        if (present(body, "min_p")) {
            b.minP(number(body, "min_p"));
        }
        if (present(body, "seed")) {
            JsonNode s = body.get("seed");
            if (!s.isIntegralNumber() || !s.canConvertToLong()) {
                throw new InvalidSamplingException("seed", "must be an integer, got " + s);
            }
            b.seed(s.asLong());
        }
        if (present(body, "presence_penalty")) {
            b.presencePenalty(number(body, "presence_penalty"));
        }
        if (present(body, "frequency_penalty")) {
            b.frequencyPenalty(number(body, "frequency_penalty"));
        }
        if (present(body, "repetition_penalty")) {
            b.repetitionPenalty(number(body, "repetition_penalty"));
        }
        if (present(body, "max_completion_tokens")) {
            b.maxTokens(integer(body, "max_completion_tokens"));
        } else if (present(body, "max_tokens")) {
            b.maxTokens(integer(body, "max_tokens"));
        }
        if (present(body, "stop")) {
            JsonNode s = body.get("stop");
            List<String> stops = new ArrayList<>();
            if (s.isTextual()) {
                stops.add(s.asText());
            } else if (s.isArray()) {
                for (JsonNode e : s) {
                    if (!e.isTextual()) {
                        throw new InvalidSamplingException("stop", "array elements must be strings, got " + e);
                    }
                    stops.add(e.asText());
                }
            } else {
                throw new InvalidSamplingException("stop", "must be a string or an array of strings, got " + s);
            }
            b.stop(stops);
        }
        if (present(body, "stop_token_ids")) {
            JsonNode s = body.get("stop_token_ids");
            if (!s.isArray()) {
                throw new InvalidSamplingException("stop_token_ids", "must be an array of integers, got " + s);
            }
            Set<Integer> ids = new LinkedHashSet<>();
            for (JsonNode e : s) {
                if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                    throw new InvalidSamplingException("stop_token_ids", "elements must be integers, got " + e);
                }
                ids.add(e.asInt());
            }
            b.stopTokenIds(ids);
        }
        if (present(body, "ignore_eos")) {
            b.ignoreEos(bool(body, "ignore_eos"));
        }
        if (present(body, "skip_special_tokens")) {
            b.skipSpecialTokens(bool(body, "skip_special_tokens"));
        }
        // Completions: logprobs is a count. Chat completions: logprobs true, with the count in top_logprobs.
        JsonNode l = present(body, "logprobs") ? body.get("logprobs") : null;
        if (present(body, "top_logprobs") && (l == null || !l.isBoolean() || !l.asBoolean())) {
            throw new InvalidSamplingException("top_logprobs", "needs \"logprobs\": true");
        }
        if (l != null && l.isBoolean()) {
            b.logprobs(!l.asBoolean() ? -1 : present(body, "top_logprobs") ? integer(body, "top_logprobs") : 0);
        } else if (l != null) {
            b.logprobs(integer(body, "logprobs"));
        }
        if (present(body, "prompt_logprobs")) {
            b.promptLogprobs(integer(body, "prompt_logprobs"));
        }
        if (present(body, "min_tokens")) {
            b.minTokens(integer(body, "min_tokens"));
        }
        if (present(body, "include_stop_str_in_output")) {
            b.includeStopStrInOutput(bool(body, "include_stop_str_in_output"));
        }
        return b.build();
    }

    private static boolean present(JsonNode body, String field) {
        JsonNode v = body.get(field);
        return v != null && !v.isNull();
    }

    private static double number(JsonNode body, String field) {
        JsonNode v = body.get(field);
        if (!v.isNumber()) {
            throw new InvalidSamplingException(field, "must be a number, got " + v);
        }
        return v.asDouble();
    }

    private static int integer(JsonNode body, String field) {
        JsonNode v = body.get(field);
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw new InvalidSamplingException(field, "must be an integer, got " + v);
        }
        return v.asInt();
    }

    private static boolean bool(JsonNode body, String field) {
        JsonNode v = body.get(field);
        if (!v.isBoolean()) {
            throw new InvalidSamplingException(field, "must be true or false, got " + v);
        }
        return v.asBoolean();
    }
}
