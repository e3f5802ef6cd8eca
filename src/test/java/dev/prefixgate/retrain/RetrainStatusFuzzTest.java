package dev.prefixgate.retrain;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
 * Training-status events from Kafka: record value → JSON → {@link RetrainRequests#status}. The
 * consumer skips what is not JSON or fails the schema (IllegalArgumentException); any other
 * exception, or a field outside the schema's range, is a finding.
 */
class RetrainStatusFuzzTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonSchema SCHEMA;

  static {
    try {
      SCHEMA = EventSchemas.load("training-status");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @FuzzTest(maxDuration = "10s")
  void status(byte[] value) {
    RetrainRequests.Status s;
    try {
      // The consumer's StringDeserializer decodes UTF-8, then RetrainRequests.follow parses.
      JsonNode event = JSON.readTree(new String(value, StandardCharsets.UTF_8));
      s = RetrainRequests.status(SCHEMA, event);
    } catch (IOException | IllegalArgumentException e) {
      return;
    }
    assertNotNull(s.requestId());
    assertTrue(
        Arrays.stream(TrainingJob.State.values()).anyMatch(st -> st.wire().equals(s.state())),
        "state " + s.state());
    assertTrue(s.progress() == null || (s.progress() >= 0 && s.progress() <= 100), "progress");
    assertTrue(s.step() == null || s.step() >= 0, "step " + s.step());
    assertTrue(s.reason() == null || s.reason().length() <= 2000);
  }
}
