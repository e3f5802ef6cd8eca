package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import java.net.URL;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * The metrics that dashboards expect (docs/operations.md, the metrics table), read back from the
 * management port's Prometheus text: the counters are counters, the histograms count each request
 * once with its exact prompt and generation lengths, and the gauges are in range. Pins the
 * regression where cache hits and misses were gauges, which Prometheus's rate() cannot use.
 */
@QuarkusTest
class MetricsTest {
  private static final Pattern SAMPLE =
      Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\\{[^}]*\\})?) (\\S+)$", Pattern.MULTILINE);

  static String scrape() {
    return given()
        .port(OpenAiApiTest.managementPort())
        .get("/q/metrics")
        .then()
        .statusCode(200)
        .extract()
        .asString();
  }

  /** Every sample line, series (name and labels as written) → value. */
  static Map<String, Double> samples(String text) {
    Map<String, Double> out = new HashMap<>();
    Matcher m = SAMPLE.matcher(text);
    while (m.find()) out.put(m.group(1), Double.parseDouble(m.group(2)));
    return out;
  }

  /** The sum over every series of {@code name} whose labels contain all of {@code labels}. */
  static double sum(Map<String, Double> s, String name, String... labels) {
    double total = 0;
    for (Map.Entry<String, Double> e : s.entrySet()) {
      String series = e.getKey();
      if (!(series.equals(name) || series.startsWith(name + "{"))) continue;
      boolean all = true;
      for (String l : labels) all &= series.contains(l);
      if (all) total += e.getValue();
    }
    return total;
  }

  static int chat(String content) {
    return given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
        .contentType(ContentType.JSON)
        .body(
            "{\"model\":\"pirate\",\"temperature\":0,\"max_tokens\":5,"
                + "\"messages\":[{\"role\":\"user\",\"content\":\""
                + content
                + "\"}]}")
        .post("/v1/chat/completions")
        .then()
        .statusCode(200)
        .extract()
        .path("usage.completion_tokens");
  }

  static int promptTokens(String content) {
    return given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
        .contentType(ContentType.JSON)
        .body(
            "{\"model\":\"pirate\",\"messages\":[{\"role\":\"user\",\"content\":\""
                + content
                + "\"}]}")
        .post("/tokenize")
        .then()
        .statusCode(200)
        .extract()
        .path("count");
  }

  @TestHTTPResource("/v1/chat/completions")
  URL chatUrl;

  /**
   * The per-adapter load gauges: a stream that has emitted its first token counts as running for
   * its tenant and adapter (and nowhere else), and once the client leaves both gauges go back to 0.
   */
  @Test
  void aStreamCountsAsRunningForItsAdapterUntilItEnds() throws Exception {
    String running = "prefixgate_adapter_requests_running";
    String waiting = "prefixgate_adapter_requests_waiting";
    String[] formal = {"tenant=\"globex\"", "adapter=\"formal\""};
    String body =
        "{\"model\":\"formal\",\"stream\":true,\"temperature\":0,\"max_tokens\":1500,"
            + "\"ignore_eos\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    HttpResponse<Stream<String>> r =
        Sse.CLIENT.send(
            Sse.request(chatUrl.toString(), OpenAiApiTest.GLOBEX, body),
            HttpResponse.BodyHandlers.ofLines());
    assertEquals(200, r.statusCode());
    try (Stream<String> lines = r.body()) {
      Iterator<String> it = lines.iterator();
      String first = it.next();
      while (!first.contains("\"content\":\"") || first.contains("\"content\":\"\"")) {
        first = it.next(); // the role chunk carries no text: wait for the first token's chunk
      }
      Map<String, Double> during = samples(scrape());
      assertEquals(1, sum(during, running, formal), "the stream is running");
      assertEquals(0, sum(during, waiting, formal));
      assertEquals(0, sum(during, running, "tenant=\"acme\""), "nothing of acme runs");
    }
    // Closing the body drops the connection: the engine cancels the row at its next step.
    Awaitility.await()
        .atMost(Duration.ofSeconds(60))
        .until(() -> sum(samples(scrape()), running, formal) == 0);
    assertEquals(0, sum(samples(scrape()), waiting, formal));
  }

  @Test
  void twoChatsMoveEveryRequestMetricByExactlyTheirOwnNumbers() {
    int prompt = promptTokens("What color is the apple?") + promptTokens("Hi");
    chat("Warm-up"); // the adapter's KV is resident from here on
    Map<String, Double> before = samples(scrape());
    int generated = chat("What color is the apple?") + chat("Hi");
    String text = scrape();
    Map<String, Double> after = samples(text);

    for (String counter :
        new String[] {
          "prefixgate_cache_hits",
          "prefixgate_cache_misses",
          "prefixgate_adapter_requests",
          "prefixgate_requests",
          "prefixgate_tokens_completion",
          "prefixgate_engine_kv_remakes",
          "prefixgate_engine_kv_remake_seconds"
        }) {
      assertTrue(
          Pattern.compile("^# TYPE " + counter + "(_total)? counter$", Pattern.MULTILINE)
              .matcher(text)
              .find(),
          counter + " is not a counter");
    }
    assertEquals(
        2, delta(before, after, "prefixgate_cache_hits_total"), "both chats found the KV resident");
    assertEquals(0, delta(before, after, "prefixgate_cache_misses_total"));
    assertEquals(
        2,
        delta(
            before,
            after,
            "prefixgate_adapter_requests_total",
            "tenant=\"acme\"",
            "adapter=\"pirate\""));
    for (String h :
        new String[] {
          "prefixgate_request_duration_seconds",
          "prefixgate_request_queue_time_seconds",
          "prefixgate_request_prompt_tokens",
          "prefixgate_request_generation_tokens"
        }) {
      assertEquals(2, delta(before, after, h + "_count"), h);
      assertEquals(2, delta(before, after, h + "_bucket", "le=\"+Inf\""), h);
    }
    assertEquals(prompt, delta(before, after, "prefixgate_request_prompt_tokens_sum"));
    assertEquals(generated, delta(before, after, "prefixgate_request_generation_tokens_sum"));
    assertEquals(
        generated, delta(before, after, "prefixgate_tokens_completion_total", "tenant=\"acme\""));
    assertTrue(delta(before, after, "prefixgate_request_duration_seconds_sum") > 0);

    double usage = sum(after, "prefixgate_kv_usage_ratio");
    assertTrue(usage >= 0 && usage <= 1, "KV usage " + usage);
    assertTrue(sum(after, "prefixgate_engine_memory_budget_bytes") > 0);
    assertTrue(sum(after, "prefixgate_engine_memory_bytes") >= 0);
    // KV in reserved address space grows without a re-make, so two chats may well make none
    assertTrue(sum(after, "prefixgate_engine_kv_remakes_total") >= 0);
    assertTrue(sum(after, "prefixgate_engine_kv_remake_seconds_total") >= 0);
    assertTrue(after.containsKey("prefixgate_engine_kv_remakes_total"));
    assertTrue(after.containsKey("prefixgate_requests_running"));
    assertTrue(after.containsKey("prefixgate_requests_waiting"));
  }

  private static double delta(
      Map<String, Double> before, Map<String, Double> after, String name, String... labels) {
    return sum(after, name, labels) - sum(before, name, labels);
  }
}
