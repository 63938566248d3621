package dev.epic.text.constrain;

import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SchemaRegistryConfig;
import com.networknt.schema.SpecificationVersion;
import com.networknt.schema.InputFormat;

/** An independent JSON Schema 2020-12 validator (networknt), formats asserted, for checking constrained output. */
final class Validator {
    private static final SchemaRegistry REGISTRY = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12,
            b -> b.schemaRegistryConfig(SchemaRegistryConfig.builder().formatAssertionsEnabled(true).build()));

    private final Schema schema;

    Validator(String schemaJson) {
        schema = REGISTRY.getSchema(schemaJson, InputFormat.JSON);
    }

    /** The validator's errors for a JSON text; empty when it is valid. */
    String errors(String json) {
        return schema.validate(json, InputFormat.JSON).toString().replace("[]", "");
    }

    boolean valid(String json) {
        return schema.validate(json, InputFormat.JSON).isEmpty();
    }
}
