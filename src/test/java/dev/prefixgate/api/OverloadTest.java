package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.notNullValue;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import java.net.URL;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** With one row and a queue of one, a third concurrent request is refused with 429. */
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

  @Test
  void fullQueueAnswers429WithRetryAfterAndOthersFinish() throws Exception {
    String slow =
        "{\"prompt\":\"Ada paints a\",\"max_tokens\":2000,\"ignore_eos\":true,\"temperature\":0}";
    List<CompletableFuture<HttpResponse<String>>> running = new ArrayList<>();
    running.add(
        Sse.CLIENT.sendAsync(
            Sse.request(url.toString(), OpenAiApiTest.ACME, slow),
            HttpResponse.BodyHandlers.ofString()));
    Thread.sleep(300); // the first request owns the only row
    running.add(
        Sse.CLIENT.sendAsync(
            Sse.request(url.toString(), OpenAiApiTest.GLOBEX, slow),
            HttpResponse.BodyHandlers.ofString()));
    Thread.sleep(200); // the second waits in the queue
    given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
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
