package dev.epic.text.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.Golden;
import dev.epic.text.TextException;
import dev.epic.text.tokenizer.TokenizerConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Jinja2 semantics the templates rely on, and input errors. */
class ChatTemplateTest {
    private static final TokenizerConfig CONFIG = TokenizerConfig.deepSeekV3();

    private static String render(String template, List<ChatMessage> messages) {
        return ChatTemplate.of(template, "test", CONFIG).render(messages, null, false);
    }

    private static String eval(String expression) {
        return render("{{ " + expression + " }}", List.of());
    }

    /**
     * Whitespace as Hugging Face's Jinja2 environment (trim_blocks, lstrip_blocks) leaves it: a newline after a
     * block tag goes; spaces before one go only from its line's start (not mid-line, where Jinjava's own
     * option dropped them too), and {@code {%+} keeps them. Templates that operators and requests bring
     * render as they do in vLLM.
     */
    @Test
    void blockWhitespaceIsJinja2s() {
        assertEquals("x y z\nw", render("x {% if true %}y {% endif %}z\n  {% if true %}w{% endif %}", List.of()));
        assertEquals("a\nb", render("{% if true %}\na\n{% endif %}\nb", List.of()));
        assertEquals("  w", render("  {%+ if true %}w{% endif %}", List.of()));
        assertEquals("x", render("\t {# a comment #}x", List.of()));
        assertEquals("[a] ", render("{% for m in ['a'] %}[{{ m }}] {% endfor %}", List.of()));
    }

    /** chat_template_kwargs: the template sees each as a variable; the names it gets from the request are refused. */
    @Test
    void variablesReachTheTemplateButNotOverTheRequestsOwn() {
        ChatTemplate t = ChatTemplate.of("{{ greeting }}{% if loud %}!{% endif %} {{ messages|length }}", "test", CONFIG);
        assertEquals("hey! 1", t.render(List.of(ChatMessage.user("x")), null, false, Map.of("greeting", "hey", "loud", true)));
        assertEquals(" 1", t.render(List.of(ChatMessage.user("x")), null, false));
        TextException e = assertThrows(TextException.class,
                () -> t.render(List.of(ChatMessage.user("x")), null, false, Map.of("messages", List.of())));
        assertTrue(e.getMessage().contains("cannot set 'messages'"), e.getMessage());
    }

    /** A template that would write without end (a request's, say) fails instead of filling the heap. */
    @Test
    void aRenderingIsBoundedInSize() {
        String huge = "{% for i in range(1000) %}{% for j in range(1000) %}" + "x".repeat(40) + "{% endfor %}{% endfor %}";
        TextException e = assertThrows(TextException.class, () -> render(huge, List.of()));
        assertTrue(e.getMessage().contains("test"), e.getMessage());
    }

    @Test
    void pythonSplitKeepsTrailingEmptyStringAndIsLiteral() {
        assertEquals("[]", "[" + eval("'abc</think>'.split('</think>')[-1]") + "]");
        assertEquals("c", eval("'a.b.c'.split('.')[-1]"));
        assertEquals("3", eval("'a.b.c'.split('.')|length"));
        assertEquals("b c", eval("'a b c'.split(' ', 1)[1]"));
        assertEquals("2", eval("'  a \u3000 b  '.split()|length"));
        assertEquals("a b", eval("'a b c'.rsplit(' ', 1)[0]"));
    }

    @Test
    void pythonStringMethods() {
        assertEquals("x", eval("' \\t x \u00a0'.strip()"));
        assertEquals("True", render("{% if 'abc'.startswith('ab') and 'abc'.endswith('bc') %}True{% endif %}",
                List.of()));
        assertEquals("c", eval("'abc'[-1]"));
        assertEquals("ABC|abc", eval("'aBc'.upper() + '|' + 'aBc'.lower()"));
        assertEquals("a-b", eval("'-'.join(['a', 'b'])"));
    }

    @Test
    void morePythonStringMethods() {
        assertEquals("Hello World|Hello world", eval("'hello wORLD'.title() + '|' + 'hELLO WORLD'.capitalize()"));
        assertEquals("1|-1|2|11", eval("'abcb'.find('b') ~ '|' ~ 'abc'.find('z') ~ '|' ~ 'abcb'.count('b') ~ '|' ~ "
                + "'abcab'.replace('', '-')|length"));
        assertEquals("x-y-abc", eval("'a-b-abc'.replace('a', 'x', 1).replace('b', 'y', 1)"));
        assertEquals("[a|b||c]", "[" + eval("'|'.join('a\\nb\\r\\n\\rc'.splitlines())") + "]");
        assertEquals("xx", eval("'xxyy'.rstrip('y')"));
        assertEquals("yy", eval("'xxyy'.lstrip('x')"));
        assertEquals("2", eval("'a\u2028b'.splitlines()|length"));
    }

    @Test
    void r1TemplateDropsEverythingUpToLastThinkEndEvenWhenNothingFollows() {
        ChatTemplate r1 = ChatTemplate.deepSeekR1_0528(CONFIG);
        String prompt = r1.render(List.of(ChatMessage.user("q"),
                ChatMessage.assistant("<think>a</think>b</think>"), ChatMessage.user("r")), null, true);
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><｜end▁of▁sentence｜><｜User｜>r<｜Assistant｜>",
                prompt);
    }

    @Test
    void messageTextIsNeverInterpretedAsTemplateCode() {
        ChatTemplate v3 = ChatTemplate.fromConfig(CONFIG);
        String prompt = v3.render(List.of(ChatMessage.user("{{ 7 * 7 }} {% if true %}x{% endif %}")), null, false);
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>{{ 7 * 7 }} {% if true %}x{% endif %}", prompt);
    }

    @Test
    void raiseExceptionBecomesTextExceptionWithTheTemplatesMessage() {
        String t = "{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
                + "{{ raise_exception('Unsupported role: ' + m['role']) }}{% endif %}{{ m['content'] }}{% endfor %}";
        assertEquals("hi", render(t, List.of(ChatMessage.user("hi"))));
        TextException e = assertThrows(TextException.class,
                () -> render(t, List.of(new ChatMessage("robot", "x", null, null, null, null))));
        assertTrue(e.getMessage().contains("Unsupported role: robot"), e.getMessage());
    }

    @Test
    void toJsonWritesLikePythonJsonDumpsWithoutAsciiEscaping() {
        Map<String, Object> tool = new LinkedHashMap<>();
        tool.put("name", "天气");
        tool.put("params", List.of(1, 2.5, 1e16, true, "a\"b\n"));
        tool.put("none", null);
        ChatTemplate t = ChatTemplate.of("{{ tools[0]|tojson }}|{{ tools[0]|tojson(indent=2) }}", "test", CONFIG);
        assertEquals("{\"name\": \"天气\", \"params\": [1, 2.5, 1e+16, true, \"a\\\"b\\n\"], \"none\": null}|"
                        + "{\n  \"name\": \"天气\",\n  \"params\": [\n    1,\n    2.5,\n    1e+16,\n    true,\n"
                        + "    \"a\\\"b\\n\"\n  ],\n  \"none\": null\n}",
                t.render(List.of(), List.of(tool), false));
    }

    @Test
    void pythonFloatRepr() {
        assertEquals("1.0", PyJson.pyFloat(1.0));
        assertEquals("0.0001", PyJson.pyFloat(1e-4));
        assertEquals("1e-05", PyJson.pyFloat(1e-5));
        assertEquals("1234567890123456.0", PyJson.pyFloat(1234567890123456.0));
        assertEquals("1.5e+16", PyJson.pyFloat(1.5e16));
        assertEquals("-0.0", PyJson.pyFloat(-0.0));
        assertEquals("0.1", PyJson.pyFloat(0.1));
    }

    @Test
    void unknownRolesReachTheTemplateWhichSkipsThem() {
        ChatTemplate v3 = ChatTemplate.fromConfig(CONFIG);
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>", v3.render(
                List.of(new ChatMessage("developer", "ignored", null, null, null, null), ChatMessage.user("Hi")),
                null, true));
    }

    @Test
    void loneSurrogateInContentIsRejectedNamingTheField() {
        ChatTemplate v3 = ChatTemplate.fromConfig(CONFIG);
        TextException e = assertThrows(TextException.class,
                () -> v3.render(List.of(ChatMessage.user("ok"), ChatMessage.user("bad \ud800 here")), null, true));
        assertTrue(e.getMessage().contains("messages[1].content"), e.getMessage());
        assertTrue(e.getMessage().contains("U+D800"), e.getMessage());
    }

    @Test
    void malformedMessagesAreRejectedWithTheirPath() throws Exception {
        JsonNode noRole = Golden.JSON.readTree("[{\"role\": \"user\", \"content\": \"a\"}, {\"content\": \"b\"}]");
        TextException e1 = assertThrows(TextException.class, () -> ChatMessage.listFromJson(noRole, "messages"));
        assertEquals("messages[1].role must be a non-empty string", e1.getMessage());
        JsonNode objArgs = Golden.JSON.readTree("[{\"role\": \"assistant\", \"content\": null, \"tool_calls\": "
                + "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1}}}]}]");
        TextException e2 = assertThrows(TextException.class, () -> ChatMessage.listFromJson(objArgs, "messages"));
        assertTrue(e2.getMessage().startsWith("messages[0].tool_calls[0].function.arguments must be a JSON string"),
                e2.getMessage());
        JsonNode numberContent = Golden.JSON.readTree("[{\"role\": \"user\", \"content\": 5}]");
        assertThrows(TextException.class, () -> ChatMessage.listFromJson(numberContent, "messages"));
    }

    @Test
    void nullContentIsRejectedWhereTheMessageShapeNeedsText() {
        ChatTemplate v3 = ChatTemplate.fromConfig(CONFIG);
        TextException e = assertThrows(TextException.class,
                () -> v3.render(List.of(ChatMessage.user(null)), null, true));
        assertEquals("messages[0].content must be a string for a user message, got null", e.getMessage());
        assertThrows(TextException.class, () -> v3.render(List.of(ChatMessage.assistant(null)), null, false));
        // An assistant message that only calls tools has null content (the V3 template requires exactly that).
        String prompt = v3.render(List.of(ChatMessage.user("q"), ChatMessage.assistantToolCalls(null,
                List.of(ToolCall.function("f", "{}")))), null, false);
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
                + "<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜>", prompt);
    }

    @Test
    void longContentIsRenderedWhole() {
        String big = "x".repeat(2_000_000) + "é";
        String prompt = ChatTemplate.fromConfig(CONFIG).render(List.of(ChatMessage.user(big)), null, true);
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>" + big + "<｜Assistant｜>", prompt);
    }

    @Test
    void syntaxErrorInTemplateIsReported() {
        TextException e = assertThrows(TextException.class, () -> render("{% if %}x{% endif %}", List.of()));
        assertTrue(e.getMessage().contains("chat template test failed"), e.getMessage());
    }

    @Test
    void bosAndEosComeFromTheConfig() {
        TokenizerConfig custom = new TokenizerConfig("<s>", "</s>", null, true, null);
        assertEquals("<s>|</s>|</s>",
                ChatTemplate.of("{{ bos_token }}|{{ eos_token }}|{{ pad_token }}", "t", custom)
                        .render(List.of(), null, false));
    }

    @Test
    void contentPartsAreJoinedAndReasoningIsPassedThrough() throws Exception {
        JsonNode msgs = Golden.JSON.readTree("[{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", "
                + "\"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}], \"reasoning_content\": \"r\"}]");
        List<ChatMessage> parsed = ChatMessage.listFromJson(msgs, "messages");
        assertEquals("a\nb|r", render("{{ messages[0]['content'] }}|{{ messages[0]['reasoning_content'] }}", parsed));
    }
}
