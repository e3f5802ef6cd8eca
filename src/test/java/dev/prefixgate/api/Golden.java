package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** PEFT golden vectors from trainer/fixtures/golden.json. */
final class Golden {
  private static JsonNode doc;

  private Golden() {}

  static synchronized JsonNode doc() {
    if (doc == null) {
      try {
        doc =
            new ObjectMapper()
                .readTree(Files.readAllBytes(Path.of("trainer/fixtures/golden.json")));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return doc;
  }

  static JsonNode of(String id) {
    for (JsonNode c : doc().get("cases")) if (c.get("id").asText().equals(id)) return c;
    throw new IllegalArgumentException(id);
  }

  static List<Integer> newIds(String id) {
    List<Integer> out = new ArrayList<>();
    for (JsonNode x : of(id).get("new_ids")) out.add(x.asInt());
    return out;
  }

  /** Golden ids up to and including the first eos, as a server that stops at eos returns them. */
  static List<Integer> idsUntilEos(String id) {
    List<Integer> all = newIds(id);
    int eos = all.indexOf(doc().get("eos_token_id").asInt());
    return eos < 0 ? all : all.subList(0, eos + 1);
  }

  /** Golden text up to the first eos. */
  static String textUntilEos(String id) {
    String t = of(id).get("text").asText();
    int i = t.indexOf("</s>");
    return i < 0 ? t : t.substring(0, i);
  }
}
