package dev.prefixgate.retrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;

/**
 * The JSONL data-set validator: a record count, or {@link IllegalArgumentException}, which the
 * admin API answers with 400. An accepted data set must be one the trainer reads the same way:
 * every non-blank line exactly one JSON object (Python's {@code json.loads} refuses trailing data).
 */
class DatasetsFuzzTest {
  private static final ObjectMapper STRICT =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  @FuzzTest(maxDuration = "10s")
  void validate(byte[] jsonl) throws Exception {
    int records;
    try {
      records = Datasets.validate(jsonl);
    } catch (IllegalArgumentException e) {
      assertTrue(e.getMessage() != null && !e.getMessage().isEmpty());
      return;
    }
    int lines = 0;
    for (String line : new String(jsonl, StandardCharsets.UTF_8).split("\n", -1)) {
      if (line.isBlank()) continue;
      lines++;
      JsonNode n = STRICT.readTree(line.strip()); // throws on trailing data: a finding
      assertTrue(n.path("instruction").isTextual() && n.path("output").isTextual(), line);
    }
    assertEquals(lines, records);
  }
}
