package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.notNullValue;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.prefixgate.engine.Engine;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import jakarta.inject.Inject;
import java.net.URL;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * With one row and a queue of one, a second waiting request of the same tenant is refused with 429.
 * The test waits on the engine's own counters, not on sleeps, so a loaded machine cannot change
 * what it reaches.
 */
@QuarkusTest
@TestProfile(OverloadTest.Tiny.class)
class OverloadTest {
  public static class Tiny implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of(
          "prefixgate.engine.max-batch-rows", "1",
          "prefixgate.engine.max-queue", "1");
    }
  }

  @TestHTTPResource("/v1/completions")
  URL url;

  @Inject Engine engine;

  @Test
  void fullQueueAnswers429WithRetryAfterAndOthersFinish() throws Exception {
    String slow =
        "{\"prompt\":\"Ada paints a\",\"max_tokens\":2000,\"ignore_eos\":true,\"temperature\":0}";
    List<CompletableFuture<HttpResponse<String>>> running = new ArrayList<>();
    running.add(
        Sse.CLIENT.sendAsync(
            Sse.request(url.toString(), OpenAiApiTest.ACME, slow),
            HttpResponse.BodyHandlers.ofString()));
    // Waits for the state it tests instead of sleeping: the first request owns the only row...
    Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> engine.stats().running() == 1);
    running.add(
        Sse.CLIENT.sendAsync(
            Sse.request(url.toString(), OpenAiApiTest.GLOBEX, slow),
            HttpResponse.BodyHandlers.ofString()));
    // ...and the second waits in the queue.
    Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> engine.stats().queued() == 1);
    // From the tenant already waiting: every tenant's first queued request is admitted (fair
    // share), so the refusal falls on the one that would hold a second place in the full queue.
    given()
        .auth()
        .oauth2(OpenAiApiTest.GLOBEX)
        .contentType(ContentType.JSON)
        .body(slow)
        .post("/v1/completions")
        .then()
        .statusCode(429)
        .header("Retry-After", notNullValue())
        .body("error.type", equalTo("rate_limit_error"));
    for (CompletableFuture<HttpResponse<String>> f : running)
      assertEquals(200, f.join().statusCode());
  }
}
