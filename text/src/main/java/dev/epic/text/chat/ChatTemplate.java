package dev.epic.text.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import dev.epic.text.TextException;
import dev.epic.text.tokenizer.TokenizerConfig;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jinjava.javax.el.CompositeELResolver;

/**
 * A Hugging Face chat template (Jinja) rendered with Jinjava, set up like transformers'
 * {@code apply_chat_template}: {@code trim_blocks} and {@code lstrip_blocks}, {@code raise_exception},
 * {@code tojson} with {@code ensure_ascii=False}, Python string methods, and the variables {@code messages},
 * {@code add_generation_prompt}, {@code tools}, {@code documents} (none), {@code bos_token}, {@code eos_token},
 * {@code pad_token}. Immutable and thread-safe.
 */
public final class ChatTemplate {
    public static final String DEFAULT_BOS = "<｜begin▁of▁sentence｜>";
    public static final String DEFAULT_EOS = "<｜end▁of▁sentence｜>";
    static final String R1_0528_RESOURCE = "/dev/epic/text/deepseek-v3/chat_template_r1_0528.jinja";

    /** The most a rendering may write: some 16 million characters, 30 times a 128K-token prompt. */
    static final long MAX_OUTPUT_CHARS = 16L << 20;

    private final String template;
    /** The template as Jinjava runs it: with Jinja2's lstrip_blocks done here (see {@link #lstripBlocks}). */
    private final String source;
    private final String origin;
    private final String bosToken;
    private final String eosToken;
    private final String padToken;
    private final Jinjava jinjava;

    private ChatTemplate(String template, String origin, String bosToken, String eosToken, String padToken) {
        this.template = template;
        this.source = lstripBlocks(template);
        this.origin = origin;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.padToken = padToken;
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PyStringMethods());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(false) // Jinjava's strips before any tag, not only at a line's start: see source
                // Templates may come from requests (--trust-request-chat-template): a prompt is far below this.
                .withMaxOutputSize(MAX_OUTPUT_CHARS)
                // Message text must never be re-parsed as template code.
                .withNestedInterpretationEnabled(false)
                .withLegacyOverrides(LegacyOverrides.NONE)
                .withElResolver(resolver)
                .build();
        this.jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception",
                TemplateLibrary.class, "raiseException", String.class));
        jinjava.getGlobalContext().registerFilter(new TemplateLibrary.ToJson());
    }

    /** A template from source text; BOS/EOS/pad strings from {@code config} (DeepSeek's when absent). */
    public static ChatTemplate of(String template, String origin, TokenizerConfig config) {
        if (template == null || template.isEmpty()) {
            throw new TextException(origin + ": empty chat template");
        }
        String bos = config != null && config.bosToken() != null ? config.bosToken() : DEFAULT_BOS;
        String eos = config != null && config.eosToken() != null ? config.eosToken() : DEFAULT_EOS;
        String pad = config != null && config.padToken() != null ? config.padToken() : eos;
        return new ChatTemplate(template, origin, bos, eos, pad);
    }

    /** The {@code chat_template} of a tokenizer_config.json. */
    public static ChatTemplate fromConfig(TokenizerConfig config) {
        if (config.chatTemplate() == null) {
            throw new TextException("tokenizer_config.json has no chat_template (pass a template file instead)");
        }
        return of(config.chatTemplate(), "tokenizer_config.json chat_template", config);
    }

    /**
     * A template given on a command line (vLLM's {@code --chat-template}): its text when it holds a Jinja tag,
     * else a file to read.
     */
    public static ChatTemplate fromArgument(String textOrFile, TokenizerConfig config) {
        return textOrFile.contains("{%") || textOrFile.contains("{{") ? of(textOrFile, "--chat-template", config)
                : read(Path.of(textOrFile), config);
    }

    /** A template file (e.g. {@code chat_template_r1_0528.jinja}) with the tokens of {@code config}. */
    public static ChatTemplate read(Path file, TokenizerConfig config) {
        try {
            return of(Files.readString(file, StandardCharsets.UTF_8), file.toString(), config);
        } catch (IOException e) {
            throw new TextException(file + ": cannot read chat template: " + e.getMessage(), e);
        }
    }

    /** The DeepSeek-R1-0528 template shipped with EPIC (a third-party copy, see SOURCE.md). */
    public static ChatTemplate deepSeekR1_0528(TokenizerConfig config) {
        try (InputStream in = ChatTemplate.class.getResourceAsStream(R1_0528_RESOURCE)) {
            if (in == null) {
                throw new TextException("missing resource " + R1_0528_RESOURCE);
            }
            return of(new String(in.readAllBytes(), StandardCharsets.UTF_8), "resource " + R1_0528_RESOURCE, config);
        } catch (IOException e) {
            throw new TextException("cannot read resource " + R1_0528_RESOURCE, e);
        }
    }

    public String template() {
        return template;
    }

    /** Spaces and tabs from a line's start to a block or comment tag ({@code {%+} keeps them). */
    private static final java.util.regex.Pattern LINE_START_TO_TAG =
            java.util.regex.Pattern.compile("(?m)^[ \\t]+(?=\\{%(?!\\+)|\\{#)");

    /**
     * Jinja2's {@code lstrip_blocks}, as Hugging Face renders chat templates with it: the spaces and tabs
     * before a block tag are dropped only when nothing else precedes it on its line. Jinjava's own option
     * drops them before any block tag ({@code "a {% if x %}b"} gave "ab" where Jinja2 gives "a b").
     */
    static String lstripBlocks(String template) {
        return LINE_START_TO_TAG.matcher(template).replaceAll("");
    }

    /**
     * Renders a conversation to the prompt text.
     *
     * @param tools tool definitions as parsed JSON (maps/lists), or null; passed to the template as {@code tools}
     * @throws TextException for text that is not valid Unicode, or when the template fails or raises
     */
    public String render(List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt) {
        return render(messages, tools, addGenerationPrompt, Map.of());
    }

    /** Variables the template gets from the conversation and the tokenizer: no request may set them. */
    public static final java.util.Set<String> RESERVED = java.util.Set.of("messages", "tools", "documents",
            "add_generation_prompt", "bos_token", "eos_token", "pad_token");

    /**
     * As above, with {@code variables} for the template beside those (vLLM's chat_template_kwargs).
     *
     * @throws TextException when a variable takes a {@link #RESERVED} name
     */
    public String render(List<ChatMessage> messages, List<?> tools, boolean addGenerationPrompt,
            Map<String, ?> variables) {
        for (String name : variables.keySet()) {
            if (RESERVED.contains(name)) {
                throw new TextException("chat_template_kwargs cannot set '" + name + "': the template gets it from the "
                        + "request itself");
            }
        }
        requireValidUnicode(variables, "chat_template_kwargs");
        List<Object> msgs = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            requireContent(messages.get(i), i);
            Map<String, Object> m = messages.get(i).toTemplateMap();
            requireValidUnicode(m, "messages[" + i + "]");
            msgs.add(m);
        }
        if (tools != null) {
            requireValidUnicode(tools, "tools");
        }
        Map<String, Object> ctx = new HashMap<>(variables);
        ctx.put("messages", msgs);
        ctx.put("tools", tools);
        ctx.put("documents", null);
        ctx.put("add_generation_prompt", addGenerationPrompt);
        ctx.put("bos_token", bosToken);
        ctx.put("eos_token", eosToken);
        ctx.put("pad_token", padToken);
        RenderResult result;
        try {
            result = jinjava.renderForResult(source, ctx);
        } catch (TemplateLibrary.TemplateRaised e) {
            throw raised(e);
        } catch (RuntimeException e) {
            Throwable raisedCause = findRaised(e);
            if (raisedCause != null) {
                throw raised((TemplateLibrary.TemplateRaised) raisedCause);
            }
            throw new TextException("chat template " + origin + " failed: " + e.getMessage(), e);
        }
        for (TemplateError err : result.getErrors()) {
            if (err.getSeverity() == TemplateError.ErrorType.FATAL) {
                Throwable raisedCause = findRaised(err.getException());
                if (raisedCause != null) {
                    throw raised((TemplateLibrary.TemplateRaised) raisedCause);
                }
                throw new TextException("chat template " + origin + " failed at line " + err.getLineno() + ": "
                        + err.getMessage());
            }
        }
        return result.getOutput();
    }

    /**
     * Templates concatenate content with strings; Jinja2 raises on {@code str + None} but Jinjava would print
     * "null", so a missing content is rejected up front where the OpenAI message shape requires one: always for
     * system/user/tool, and for an assistant message without tool calls.
     */
    private static void requireContent(ChatMessage m, int i) {
        if (m.content() != null) {
            return;
        }
        boolean required = switch (m.role()) {
            case "system", "user", "tool" -> true;
            case "assistant" -> m.toolCalls() == null || m.toolCalls().isEmpty();
            default -> false;
        };
        if (required) {
            throw new TextException("messages[" + i + "].content must be a string for a " + m.role() + " message"
                    + (m.role().equals("assistant") ? " without tool_calls" : "") + ", got null");
        }
    }

    private TextException raised(TemplateLibrary.TemplateRaised e) {
        return new TextException("chat template " + origin + " raised: " + e.getMessage(), e);
    }

    private static Throwable findRaised(Throwable t) {
        for (int depth = 0; t != null && depth < 20; depth++, t = t.getCause()) {
            if (t instanceof TemplateLibrary.TemplateRaised) {
                return t;
            }
        }
        return null;
    }

    /** Rejects lone surrogates anywhere in the (nested) input, naming the field. */
    private static void requireValidUnicode(Object v, String where) {
        switch (v) {
            case null -> {}
            case String s -> {
                for (int i = 0; i < s.length(); i++) {
                    char c = s.charAt(i);
                    if (Character.isHighSurrogate(c) && i + 1 < s.length()
                            && Character.isLowSurrogate(s.charAt(i + 1))) {
                        i++;
                    } else if (Character.isSurrogate(c)) {
                        throw new TextException(String.format(
                                "%s is not valid Unicode: lone surrogate U+%04X at char index %d", where, (int) c, i));
                    }
                }
            }
            case Map<?, ?> m -> m.forEach((k, x) -> requireValidUnicode(x, where + "." + k));
            case List<?> l -> {
                for (int i = 0; i < l.size(); i++) {
                    requireValidUnicode(l.get(i), where + "[" + i + "]");
                }
            }
            default -> {}
        }
    }
}
