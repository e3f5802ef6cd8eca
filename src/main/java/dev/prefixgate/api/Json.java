package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;

/** Stored JSON columns shown as JSON in admin views. */
final class Json {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  private Json() {}

  /** The parsed column, or null when it is empty or not JSON (shown as absent, never a 500). */
  static JsonNode tree(String json) {
    if (json == null || json.isEmpty()) return null;
    try {
      return MAPPER.readTree(json);
    } catch (IOException e) {
      return null;
    }
  }
}
