package dev.prefixgate.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The committed demo fixtures (trainer/fixtures), loaded once per test JVM. */
final class Fixtures {
  static final Path ROOT = Path.of("trainer", "fixtures");
  static final Path MODEL_DIR = ROOT.resolve("tiny-bloom");

  private static BloomModel model;
  private static JsonNode golden;
  private static JsonNode goldenLogits;

  private Fixtures() {}

  static synchronized BloomModel model() {
    if (model == null)
      model = BloomModel.load(MODEL_DIR, EngineOptions.defaults().withIntraOpThreads(1));
    return model;
  }

  static synchronized JsonNode golden() {
    if (golden == null) golden = readJson(ROOT.resolve("golden.json"));
    return golden;
  }

  static synchronized JsonNode goldenLogits() {
    if (goldenLogits == null) goldenLogits = readJson(ROOT.resolve("golden-logits.json"));
    return goldenLogits;
  }

  static JsonNode goldenCase(String id) {
    for (JsonNode c : golden().get("cases")) {
      if (c.get("id").asText().equals(id)) return c;
    }
    throw new IllegalArgumentException("no golden case " + id);
  }

  static List<String> caseIds() {
    List<String> ids = new ArrayList<>();
    for (JsonNode c : golden().get("cases")) ids.add(c.get("id").asText());
    return ids;
  }

  static int[] ints(JsonNode array) {
    int[] out = new int[array.size()];
    for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
    return out;
  }

  static byte[] adapterFile(String adapter, String file) {
    try {
      return Files.readAllBytes(ROOT.resolve("adapters").resolve(adapter).resolve(file));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static PrefixAdapter adapter(String name) {
    try {
      return PrefixAdapter.read(
          adapterFile(name, "adapter_config.json"),
          adapterFile(name, "adapter_model.safetensors"),
          model().config());
    } catch (AdapterFormatException e) {
      throw new AssertionError(e);
    }
  }

  static PrefixKv prefixOf(JsonNode goldenCase) {
    JsonNode a = goldenCase.get("adapter");
    return a == null || a.isNull() ? null : adapter(a.asText()).kv();
  }

  /** A prompt of {@code n} tokens: the golden prompts back to back. */
  static int[] longPrompt(int n) {
    int[] out = new int[n];
    List<String> ids = caseIds();
    int k = 0;
    for (int i = 0; k < n; i++) {
      for (int t : ints(goldenCase(ids.get(i % ids.size())).get("prompt_ids"))) {
        if (k < n) out[k++] = t;
      }
    }
    return out;
  }

  private static JsonNode readJson(Path p) {
    try {
      return new ObjectMapper().readTree(Files.readAllBytes(p));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
