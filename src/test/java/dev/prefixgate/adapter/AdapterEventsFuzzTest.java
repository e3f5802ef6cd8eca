package dev.prefixgate.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.JsonSchema;
import dev.prefixgate.messaging.EventSchemas;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A Kafka adapter event as the consumer sees it: record bytes → JSON → schema, key, base64, size,
 * checksum and fingerprint checks ({@link AdapterEvents#check}). The outcome is "not JSON", a
 * {@link AdapterEvents.Rejection}, or the accepted fields; an exception is a finding. Input layout:
 * the record key up to the first newline (none: a record without key), then the value.
 */
class AdapterEventsFuzzTest {
  /** The fingerprint the seed events carry. */
  static final String FINGERPRINT = "ab".repeat(32);

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonSchema SCHEMA;

  static {
    try {
      SCHEMA = EventSchemas.load("adapter-event");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @FuzzTest(maxDuration = "10s")
  void check(byte[] record) {
    int nl = indexOf(record, (byte) '\n');
    byte[] key = nl < 0 ? null : Arrays.copyOfRange(record, 0, nl);
    byte[] value = nl < 0 ? record : Arrays.copyOfRange(record, nl + 1, record.length);
    JsonNode event;
    try {
      event = JSON.readTree(value); // AdapterEvents.handle: a failure here is "not JSON"
    } catch (IOException e) {
      return;
    }
    AdapterEvents.Checked c = AdapterEvents.check(SCHEMA, key, event, 64 * 1024, FINGERPRINT);
    if (c.rejection() != null) {
      assertNotNull(c.rejection().field());
      assertNotNull(c.rejection().reason());
      return;
    }
    assertArrayEquals(
        (c.tenant() + "/" + c.name()).getBytes(StandardCharsets.UTF_8), key, "record key");
    assertEquals(
        dev.prefixgate.engine.PrefixAdapter.sha256(c.weights()), event.get("sha256").asText());
  }

  private static int indexOf(byte[] b, byte x) {
    for (int i = 0; i < b.length; i++) if (b[i] == x) return i;
    return -1;
  }
}
