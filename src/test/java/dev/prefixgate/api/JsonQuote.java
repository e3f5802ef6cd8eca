package dev.prefixgate.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

/** JSON string literal of a Java string, for hand-written request bodies. */
final class JsonQuote {
  private static final ObjectMapper M = new ObjectMapper();

  private JsonQuote() {}

  static String of(String s) {
    try {
      return M.writeValueAsString(s);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
