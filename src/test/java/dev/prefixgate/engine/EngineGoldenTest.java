package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Exact token ids against PEFT/PyTorch greedy goldens, alone, batched and joining mid-flight. */
class EngineGoldenTest {
  private static Engine engine;

  @BeforeAll
  static void start() {
    engine = new Engine(Fixtures.model(), EngineOptions.defaults().withIntraOpThreads(1));
  }

  @AfterAll
  static void stop() {
    engine.close();
  }

  static List<String> caseIds() {
    return Fixtures.caseIds();
  }

  private static GenerationRequest request(JsonNode c, SamplingParams params) {
    return new GenerationRequest(
        "t-" + c.get("id").asText(),
        Fixtures.prefixOf(c),
        Fixtures.ints(c.get("prompt_ids")),
        params);
  }

  private static SamplingParams goldenParams() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    return SamplingParams.greedy(n).withIgnoreEos(true);
  }

  @ParameterizedTest
  @MethodSource("caseIds")
  void greedyIdsEqualGolden(String id) {
    JsonNode c = Fixtures.goldenCase(id);
    Collector out = new Collector();
    engine.submit(request(c, goldenParams()), out);
    Completion done = out.await();
    assertEquals(FinishReason.LENGTH, done.reason(), () -> "error: " + done.error());
    assertArrayEquals(Fixtures.ints(c.get("new_ids")), out.idArray(), id);
    // The golden text is decode() without skipping specials; the engine never emits special text.
    String expected = c.get("text").asText().replace("</s>", "");
    assertEquals(expected, Fixtures.model().tokenizer().decode(out.idArray()));
    assertEquals(expected, out.text.toString());
  }

  /** The first token's log-probability matches log_softmax of PyTorch's first-step logits. */
  @ParameterizedTest
  @MethodSource("caseIds")
  void firstTokenLogprobMatchesGoldenLogits(String id) {
    JsonNode c = Fixtures.goldenCase(id);
    SamplingParams p = new SamplingParams(1, 0, 0, 1, 1, null, List.of(), true, true);
    Collector out = new Collector();
    engine.submit(request(c, p), out);
    out.await();
    JsonNode logits = Fixtures.goldenLogits().get(id);
    double max = Double.NEGATIVE_INFINITY;
    for (JsonNode v : logits) max = Math.max(max, v.asDouble());
    double sum = 0;
    for (JsonNode v : logits) sum += Math.exp(v.asDouble() - max);
    int token = out.ids.get(0);
    double expected = logits.get(token).asDouble() - max - Math.log(sum);
    assertEquals(expected, out.logprobs.get(0), 1e-3);
  }

  @Test
  void mixedBatchRowsEqualTheirGoldens() {
    List<JsonNode> rows = new ArrayList<>();
    for (JsonNode r : Fixtures.golden().get("batch"))
      rows.add(Fixtures.goldenCase(r.get("case").asText()));
    List<Collector> outs = new ArrayList<>();
    // Submitted back to back, the engine admits them into one prefill and one decode batch.
    for (JsonNode c : rows) {
      Collector out = new Collector();
      engine.submit(request(c, goldenParams()), out);
      outs.add(out);
    }
    for (int i = 0; i < rows.size(); i++) {
      outs.get(i).await();
      assertArrayEquals(
          Fixtures.ints(rows.get(i).get("new_ids")),
          outs.get(i).idArray(),
          rows.get(i).get("id").asText());
    }
  }

  @Test
  void rowsJoiningAndLeavingMidGenerationStayExact() throws Exception {
    List<String> ids = List.of("globex/0", "acme/1", "base/3", "initech/0", "globex/2", "acme/2");
    List<Collector> outs = new ArrayList<>();
    for (int i = 0; i < ids.size(); i++) {
      JsonNode c = Fixtures.goldenCase(ids.get(i));
      int n = 10 + 4 * i; // different lengths, so rows leave at different steps
      Collector out = new Collector();
      engine.submit(request(c, SamplingParams.greedy(n).withIgnoreEos(true)), out);
      outs.add(out);
      if (i > 0) {
        outs.get(i - 1).awaitTokens(3);
      }
    }
    for (int i = 0; i < ids.size(); i++) {
      int[] golden = Fixtures.ints(Fixtures.goldenCase(ids.get(i)).get("new_ids"));
      outs.get(i).await();
      int[] got = outs.get(i).idArray();
      assertEquals(10 + 4 * i, got.length);
      assertArrayEquals(java.util.Arrays.copyOf(golden, got.length), got, ids.get(i));
    }
  }

  @Test
  void eosEndsTheSequenceWithStop() {
    JsonNode c = Fixtures.goldenCase("acme/0");
    int[] golden = Fixtures.ints(c.get("new_ids"));
    int eos = Fixtures.golden().get("eos_token_id").asInt();
    int firstEos = -1;
    for (int i = 0; i < golden.length && firstEos < 0; i++) if (golden[i] == eos) firstEos = i;
    assertTrue(firstEos > 0, "fixture must contain an eos");
    Collector out = new Collector();
    engine.submit(request(c, SamplingParams.greedy(32)), out);
    Completion done = out.await();
    assertEquals(FinishReason.STOP, done.reason());
    assertArrayEquals(java.util.Arrays.copyOf(golden, firstEos + 1), out.idArray());
    assertEquals(firstEos + 1, done.completionTokens());
    assertEquals(" Arr, matey! The apple is red. Yo ho ho!", out.text.toString());
  }
}
