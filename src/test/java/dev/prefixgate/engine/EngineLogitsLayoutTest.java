package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine on the other logits layout than the committed demo graph's: that graph rewritten by
 * {@code python -m prefixgate_trainer.export --keep-last-logits} or {@code --all-logits} (a graph
 * edit, no PyTorch, a few seconds), so both layouts run the goldens whichever one the fixtures
 * hold. The contract must detect the layout, and every golden must stay token-exact, alone, in one
 * mixed batch and with prefill cut into several runs. Skipped only where the trainer's Python
 * environment is not installed.
 */
class EngineLogitsLayoutTest {
  private static final Path PYTHON = Path.of("trainer", "python", ".venv", "bin", "python");
  @TempDir static Path tmp;
  private static BloomModel model;

  @BeforeAll
  static void rewrite() throws Exception {
    assumeTrue(Files.isExecutable(PYTHON), "no trainer venv at " + PYTHON);
    Path dst = tmp.resolve("tiny-other-layout");
    boolean committedIsLast =
        Fixtures.model().contract().logitsLayout() == GraphContract.LogitsLayout.LAST_POSITION;
    Process p =
        new ProcessBuilder(
                PYTHON.toAbsolutePath().toString(),
                "-m",
                "prefixgate_trainer.export",
                committedIsLast ? "--all-logits" : "--keep-last-logits",
                Fixtures.MODEL_DIR.toAbsolutePath().toString(),
                dst.toString())
            .directory(Path.of("trainer", "python").toFile())
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes());
    if (!p.waitFor(300, TimeUnit.SECONDS)) p.destroyForcibly();
    assertEquals(0, p.exitValue(), out);
    model = BloomModel.load(dst, EngineOptions.defaults().withIntraOpThreads(1));
  }

  @AfterAll
  static void close() {
    if (model != null) model.close();
  }

  @Test
  void theContractTellsTheLayoutsApart() {
    assertNotEquals(Fixtures.model().contract().logitsLayout(), model.contract().logitsLayout());
    assertEquals(
        GraphContract.LogitsLayout.LAST_POSITION, GraphContract.layoutOf(new long[] {-1, 1, 7}));
    assertEquals(
        GraphContract.LogitsLayout.ALL_POSITIONS, GraphContract.layoutOf(new long[] {-1, -1, 7}));
  }

  private static GenerationRequest request(String id, int n) {
    JsonNode c = Fixtures.goldenCase(id);
    PrefixKv prefix = null;
    JsonNode a = c.get("adapter");
    if (a != null && !a.isNull()) {
      try {
        prefix =
            PrefixAdapter.read(
                    Fixtures.adapterFile(a.asText(), "adapter_config.json"),
                    Fixtures.adapterFile(a.asText(), "adapter_model.safetensors"),
                    model.config())
                .kv();
      } catch (AdapterFormatException e) {
        throw new AssertionError(e);
      }
    }
    return new GenerationRequest(
        "t-" + id,
        prefix,
        Fixtures.ints(c.get("prompt_ids")),
        SamplingParams.greedy(n).withIgnoreEos(true));
  }

  private void allGoldensExact(EngineOptions options) {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    try (Engine e = new Engine(model, options.withIntraOpThreads(1))) {
      List<Collector> outs = new ArrayList<>();
      for (String id : Fixtures.caseIds()) {
        Collector c = new Collector();
        e.submit(request(id, n), c); // back to back: shared prefills and one decode batch
        outs.add(c);
      }
      for (int i = 0; i < outs.size(); i++) {
        String id = Fixtures.caseIds().get(i);
        outs.get(i).await();
        int[] golden = Fixtures.ints(Fixtures.goldenCase(id).get("new_ids"));
        assertArrayEquals(Arrays.copyOf(golden, n), outs.get(i).idArray(), id);
      }
    }
  }

  @Test
  void everyGoldenStaysExact() {
    allGoldensExact(EngineOptions.defaults());
  }

  @Test
  void everyGoldenStaysExactWithPrefillInSeveralRuns() {
    allGoldensExact(EngineOptions.defaults().withMaxPrefillTokens(8));
  }

  @Test
  void aloneEachCaseIsExact() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    try (Engine e = new Engine(model, EngineOptions.defaults().withIntraOpThreads(1))) {
      for (String id : Fixtures.caseIds()) {
        Collector c = new Collector();
        e.submit(request(id, n), c);
        c.await();
        int[] golden = Fixtures.ints(Fixtures.goldenCase(id).get("new_ids"));
        assertArrayEquals(Arrays.copyOf(golden, n), c.idArray(), id);
      }
    }
  }
}
