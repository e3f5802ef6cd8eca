package dev.prefixgate.messaging;

import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import java.io.IOException;
import java.io.InputStream;

/** The Kafka payload schemas from deploy/schemas (copied to {@code /schemas} on the classpath). */
public final class EventSchemas {
  private EventSchemas() {}

  /** Loads {@code deploy/schemas/<name>.schema.json}. */
  public static JsonSchema load(String name) throws IOException {
    try (InputStream in =
        EventSchemas.class.getResourceAsStream("/schemas/" + name + ".schema.json")) {
      if (in == null) throw new IOException("schema " + name + " is not on the classpath");
      return JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(in);
    }
  }
}
