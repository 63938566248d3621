package dev.epic.text.generate;

/** Token counts for one request (OpenAI {@code usage}). */
public record Usage(int promptTokens, int completionTokens) {
    public int totalTokens() {
        return promptTokens + completionTokens;
    }
}
