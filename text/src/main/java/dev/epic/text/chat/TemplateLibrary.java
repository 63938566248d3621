package dev.epic.text.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import java.util.Map;

/**
 * The helpers transformers' {@code apply_chat_template} adds to Jinja: {@code raise_exception(msg)} and a
 * {@code tojson} that writes like Python's {@code json.dumps(..., ensure_ascii=False)}.
 */
final class TemplateLibrary {
    private TemplateLibrary() {}

    /** Thrown by the template's {@code raise_exception}; carried out of Jinjava and reported as the error. */
    static final class TemplateRaised extends RuntimeException {
        TemplateRaised(String message) {
            super(message, null, false, false);
        }
    }

    /** Bound as the Jinja global function {@code raise_exception}. */
    public static String raiseException(String message) {
        throw new TemplateRaised(message);
    }

    static final class ToJson implements Filter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, (Object[]) args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indentArg = kwargs.containsKey("indent") ? kwargs.get("indent")
                    : args != null && args.length > 0 ? args[0] : null;
            Integer indent = indentArg == null ? null : Integer.valueOf(indentArg.toString().trim());
            boolean sortKeys = Boolean.parseBoolean(String.valueOf(kwargs.getOrDefault("sort_keys", "false")));
            boolean ensureAscii = Boolean.parseBoolean(String.valueOf(kwargs.getOrDefault("ensure_ascii", "false")));
            return PyJson.dumps(var, indent, sortKeys, ensureAscii);
        }
    }
}
