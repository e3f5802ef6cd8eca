package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.everyItem;
import static org.hamcrest.Matchers.hasItem;
import static org.hamcrest.Matchers.not;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.engine.Engine;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.net.URL;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.awaitility.Awaitility;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The OpenAI-compatible API over real HTTP, on the demo tenants and the real tiny model. */
@QuarkusTest
class OpenAiApiTest {
  static final String ACME = "pg-demo-acme";
  static final String GLOBEX = "pg-demo-globex";
  static final ObjectMapper JSON = new ObjectMapper();

  @TestHTTPResource("/v1/chat/completions")
  URL chatUrl;

  @TestHTTPResource("/v1/completions")
  URL completionsUrl;

  @Inject Engine engine;

  private static ObjectNode completion(String model, String prompt) {
    ObjectNode b = JSON.createObjectNode();
    b.put("model", model).put("prompt", prompt).put("temperature", 0).put("max_tokens", 32);
    return b;
  }

  /** /v1/completions applies no template: PEFT's prompt gives PEFT's exact greedy ids. */
  @ParameterizedTest
  @CsvSource({
    "acme/0,pirate,pg-demo-acme",
    "acme/3,pirate,pg-demo-acme",
    "globex/1,formal,pg-demo-globex",
    "initech/2,json,pg-demo-initech",
    "base/0,base,pg-demo-acme"
  })
  void completionsGreedyIdsEqualPeftGolden(String caseId, String model, String key) {
    ObjectNode body = completion(model, Golden.of(caseId).get("prompt").asText());
    body.put("ignore_eos", true).put("return_token_ids", true);
    List<Integer> ids =
        given()
            .auth()
            .oauth2(key)
            .contentType(ContentType.JSON)
            .body(body.toString())
            .post("/v1/completions")
            .then()
            .statusCode(200)
            .body("object", equalTo("text_completion"))
            .body("choices[0].finish_reason", equalTo("length"))
            .body("usage.completion_tokens", equalTo(32))
            .extract()
            .jsonPath()
            .getList("choices[0].token_ids", Integer.class);
    assertEquals(Golden.newIds(caseId), ids);
  }

  @Test
  void nonStreamingChatStopsAtEosWithTheGoldenAnswer() {
    String body =
        "{\"model\":\"pirate\",\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"What color is the apple?\"}]}";
    given()
        .auth()
        .oauth2(ACME)
        .contentType(ContentType.JSON)
        .body(body)
        .post("/v1/chat/completions")
        .then()
        .statusCode(200)
        .body("object", equalTo("chat.completion"))
        .body("model", equalTo("pirate@1"))
        .body("choices[0].message.role", equalTo("assistant"))
        .body("choices[0].message.content", equalTo(Golden.textUntilEos("acme/0")))
        .body("choices[0].finish_reason", equalTo("stop"))
        .body("usage.completion_tokens", equalTo(Golden.idsUntilEos("acme/0").size()));
  }

  @Test
  void streamingChatHasOpenAiChunksUsageAndDone() throws Exception {
    String body =
        "{\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
            + "\"messages\":[{\"role\":\"user\",\"content\":\"Greet the person.\\nNia\"}]}";
    Sse.Result r = Sse.post(chatUrl.toString(), GLOBEX, body);
    assertEquals(200, r.status());
    assertTrue(r.contentType().startsWith("text/event-stream"), r.contentType());
    assertEquals("[DONE]", r.data().get(r.data().size() - 1));
    List<JsonNode> chunks = r.chunks();
    JsonNode first = chunks.get(0);
    assertEquals("chat.completion.chunk", first.get("object").asText());
    assertEquals("assistant", first.at("/choices/0/delta/role").asText());
    StringBuilder text = new StringBuilder();
    String finish = null;
    JsonNode usage = null;
    for (JsonNode c : chunks) {
      assertEquals(first.get("id").asText(), c.get("id").asText());
      if (c.has("usage")) {
        usage = c.get("usage");
        assertEquals(0, c.get("choices").size());
        continue;
      }
      text.append(c.at("/choices/0/delta/content").asText(""));
      if (!c.at("/choices/0/finish_reason").isNull())
        finish = c.at("/choices/0/finish_reason").asText();
    }
    assertEquals(Golden.textUntilEos("globex/1"), text.toString());
    assertEquals("stop", finish);
    assertEquals(Golden.idsUntilEos("globex/1").size(), usage.get("completion_tokens").asInt());
    assertEquals(
        Golden.of("globex/1").get("prompt_ids").size(), usage.get("prompt_tokens").asInt());
  }

  /**
   * The PEFT tutorial's question to the Chinese demo tenant streams its golden answer; its first
   * characters are split across byte-level tokens, so no chunk may carry a broken character.
   */
  @Test
  void streamingChineseAnswerNeverSplitsACharacter() throws Exception {
    String body =
        "{\"temperature\":0,\"stream\":true,"
            + "\"messages\":[{\"role\":\"user\",\"content\":\"考试有哪些技巧？\"}]}";
    Sse.Result r = Sse.post(chatUrl.toString(), "pg-demo-xuetang", body);
    assertEquals(200, r.status());
    StringBuilder text = new StringBuilder();
    int pieces = 0;
    for (JsonNode c : r.chunks()) {
      String piece = c.at("/choices/0/delta/content").asText("");
      assertFalse(piece.contains("\uFFFD"), "chunk " + pieces + ": " + piece);
      text.append(piece);
      if (!piece.isEmpty()) pieces++;
    }
    assertEquals(Golden.textUntilEos("xuetang/4"), text.toString());
    assertTrue(text.toString().startsWith(" 同学你好！"), text.toString());
    assertTrue(pieces > 3, "the answer must arrive in several chunks, got " + pieces);
  }

  @Test
  void concurrentTenantsEachGetTheirOwnAdapter() throws Exception {
    String[][] calls = {
      {ACME, "acme/1"}, {GLOBEX, "globex/1"}, {"pg-demo-initech", "initech/1"}, {ACME, "acme/1"}
    };
    List<CompletableFuture<HttpResponse<String>>> futures = new ArrayList<>();
    for (String[] c : calls) {
      ObjectNode body = completion("", Golden.of(c[1]).get("prompt").asText());
      body.remove("model"); // the tenant's default adapter
      body.put("ignore_eos", true).put("return_token_ids", true);
      futures.add(
          Sse.CLIENT.sendAsync(
              Sse.request(completionsUrl.toString(), c[0], body.toString()),
              HttpResponse.BodyHandlers.ofString()));
    }
    for (int i = 0; i < calls.length; i++) {
      JsonNode out = JSON.readTree(futures.get(i).join().body());
      List<Integer> ids = new ArrayList<>();
      out.at("/choices/0/token_ids").forEach(x -> ids.add(x.asInt()));
      assertEquals(Golden.newIds(calls[i][1]), ids, calls[i][1]);
    }
  }

  @Test
  void missingOrWrongKeyIs401() {
    given()
        .contentType(ContentType.JSON)
        .body("{}")
        .post("/v1/chat/completions")
        .then()
        .statusCode(401)
        .body("error.code", equalTo("invalid_api_key"));
    given()
        .auth()
        .oauth2("pg-wrong")
        .contentType(ContentType.JSON)
        .body("{}")
        .post("/v1/completions")
        .then()
        .statusCode(401);
    given().auth().oauth2("pg-wrong").get("/v1/models").then().statusCode(401);
  }

  /**
   * Another tenant's adapter answers exactly like a missing one: no existence leak, no fallback.
   */
  @Test
  void anotherTenantsAdapterIsIndistinguishableFromAMissingOne() {
    String foreign =
        given()
            .auth()
            .oauth2(ACME)
            .contentType(ContentType.JSON)
            .body(completion("formal", "Hi").toString())
            .post("/v1/completions")
            .then()
            .statusCode(404)
            .body("error.code", equalTo("model_not_found"))
            .extract()
            .asString();
    String missing =
        given()
            .auth()
            .oauth2(ACME)
            .contentType(ContentType.JSON)
            .body(completion("nosuch", "Hi").toString())
            .post("/v1/completions")
            .then()
            .statusCode(404)
            .extract()
            .asString();
    assertEquals(foreign.replace("formal", "X"), missing.replace("nosuch", "X"));
    given()
        .auth()
        .oauth2(ACME)
        .contentType(ContentType.JSON)
        .body(completion("formal@1", "Hi").toString())
        .post("/v1/completions")
        .then()
        .statusCode(404);
  }

  @Test
  void modelsListsOnlyTheCallersModels() {
    given()
        .auth()
        .oauth2(ACME)
        .get("/v1/models")
        .then()
        .statusCode(200)
        .body("object", equalTo("list"))
        .body("data.id", hasItem("pirate"))
        .body("data.id", hasItem("base"))
        .body("data.id", not(hasItem("formal")))
        // The demo model is the float32 export: every entry (adapters run on it) says so.
        .body("data.quantization.weights", everyItem(equalTo("fp32")))
        .body("data.quantization.bits", everyItem(equalTo(32)));
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "{not json|invalid_json|",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"foo\":1}|invalid_value|foo",
        "{\"messages\":[]}|invalid_value|messages",
        "{\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}|invalid_value|messages[0].role",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}|invalid_value|messages[0].content",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":3}|invalid_value|temperature",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":0}|invalid_value|top_p",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_k\":-1}|invalid_value|top_k",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}|invalid_value|n",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}|invalid_value|max_tokens",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":100000}|context_length_exceeded|max_tokens",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}|invalid_value|stop",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"seed\":1.5}|invalid_value|seed",
        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"hi\"}]}|invalid_value|messages",
      })
  void badInputGets400NamingTheParameter(String body, String code, String param) {
    var r =
        given()
            .auth()
            .oauth2(ACME)
            .contentType(ContentType.JSON)
            .body(body)
            .post("/v1/chat/completions")
            .then()
            .statusCode(400)
            .body("error.type", equalTo("invalid_request_error"))
            .body("error.code", equalTo(code))
            .extract()
            .jsonPath();
    if (param == null) assertNull(r.get("error.param"));
    else assertEquals(param, r.getString("error.param"));
  }

  @Test
  void promptOverTheContextLimitIsRefusedWithTheNumbers() {
    String longPrompt = "lantern ".repeat(3000);
    given()
        .auth()
        .oauth2(ACME)
        .contentType(ContentType.JSON)
        .body(completion("pirate", longPrompt).toString())
        .post("/v1/completions")
        .then()
        .statusCode(400)
        .body("error.code", equalTo("context_length_exceeded"))
        .body("error.message", containsString("maximum context length is 2048 tokens"))
        .body("error.message", containsString("8 in the adapter prefix"));
  }

  /** A client that goes away mid-stream frees its row at the next step. */
  @Test
  void disconnectCancelsTheGeneration() throws Exception {
    String body =
        "{\"model\":\"pirate\",\"prompt\":\"Ada paints a\",\"stream\":true,\"max_tokens\":2000,"
            + "\"ignore_eos\":true,\"temperature\":0}";
    long before = engine.stats().generatedTokens();
    HttpResponse<InputStream> r =
        Sse.CLIENT.send(
            Sse.request(completionsUrl.toString(), ACME, body),
            HttpResponse.BodyHandlers.ofInputStream());
    assertEquals(200, r.statusCode());
    InputStream in = r.body();
    byte[] buf = new byte[256];
    assertTrue(in.read(buf) > 0);
    in.close();
    Awaitility.await().atMost(Duration.ofSeconds(20)).until(() -> engine.stats().running() == 0);
    long generated = engine.stats().generatedTokens() - before;
    assertTrue(generated < 2000, "generation went on after the disconnect: " + generated);
  }

  /** Quarkus's management interface in tests (quarkus.management.test-port). */
  static int managementPort() {
    return org.eclipse.microprofile.config.ConfigProvider.getConfig()
        .getOptionalValue("quarkus.management.test-port", Integer.class)
        .orElse(9001);
  }

  /**
   * Metrics (which name every tenant), health and the OpenAPI document are on the management port;
   * the public port answers 404 for all of /q, and Swagger UI is off outside the demo.
   */
  @Test
  void metricsHealthAndOpenApiAreOnTheManagementPortOnly() {
    given()
        .auth()
        .oauth2(ACME)
        .contentType(ContentType.JSON)
        .body(completion("pirate", "Hi").toString())
        .post("/v1/completions")
        .then()
        .statusCode(200);
    int management = managementPort();
    given()
        .port(management)
        .get("/q/metrics")
        .then()
        .statusCode(200)
        .body(containsString("prefixgate_requests_total{status=\"200\",tenant=\"acme\"}"))
        .body(containsString("prefixgate_tokens_completion_total{tenant=\"acme\"}"))
        .body(containsString("prefixgate_ttft_seconds"))
        .body(containsString("prefixgate_queue_depth"));
    given()
        .port(management)
        .get("/q/health/ready")
        .then()
        .statusCode(200)
        .body(containsString("\"model\""))
        // The test command runs this class on H2 and again on PostgreSQL (only the URL differs).
        .body(
            "checks.find { it.name == 'registry' }.data.databaseKind",
            equalTo(
                ConfigProvider.getConfig()
                        .getValue("quarkus.datasource.jdbc.url", String.class)
                        .startsWith("jdbc:postgresql:")
                    ? "postgresql"
                    : "h2"));
    given()
        .port(management)
        .get("/q/openapi")
        .then()
        .statusCode(200)
        .body(containsString("/v1/chat/completions"))
        .body(containsString("/admin/tenants"));
    for (String path :
        List.of("/q/metrics", "/q/health/ready", "/q/health", "/q/openapi", "/q/swagger-ui/")) {
      given().get(path).then().statusCode(404);
    }
    given().port(management).get("/q/swagger-ui/").then().statusCode(404);
  }
}
