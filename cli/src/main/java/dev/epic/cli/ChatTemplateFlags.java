package dev.epic.cli;

import dev.epic.coordinator.ServedModel;
import picocli.CommandLine.Option;

/** vLLM's chat template flags for a coordinator: the template it renders with, and whether a request may bring its own. */
final class ChatTemplateFlags {
    @Option(names = "--chat-template", paramLabel = "FILE|TEXT",
            description = "render chat prompts with this Jinja template (a file, or the template's text) instead of the "
                    + "model's tokenizer_config.json one")
    String chatTemplate;

    @Option(names = "--trust-request-chat-template",
            description = "let a chat request bring its own template (chat_template); off by default, as in vLLM: a "
                    + "template is code the operator did not write")
    boolean trustRequestChatTemplate;

    /** {@code model} served as these flags say. */
    ServedModel apply(ServedModel model) {
        return model.withChatTemplate(chatTemplate).withTrustRequestChatTemplate(trustRequestChatTemplate);
    }
}
