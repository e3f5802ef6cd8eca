package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The OpenAI fields clients send by default (docs/api.md, the field table): harmless ones are
 * accepted and ignored, ones that would silently change the meaning are refused with a 400 naming
 * them, and logprobs, top_logprobs and the OpenAI penalties work, streamed and not.
 */
@QuarkusTest
class ConformanceTest {
  static final ObjectMapper JSON = new ObjectMapper();

  @TestHTTPResource("/v1/chat/completions")
  URL chatUrl;

  @TestHTTPResource("/v1/completions")
  URL completionsUrl;

  static String chat(String extra) {
    return "{\"model\":\"pirate\",\"temperature\":0,\"max_tokens\":6,"
        + "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]"
        + (extra.isEmpty() ? "" : "," + extra)
        + "}";
  }

  static io.restassured.response.ValidatableResponse post(String path, String body) {
    return given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
        .contentType(ContentType.JSON)
        .body(body)
        .post(path)
        .then();
  }

  /** What chat UIs and agent frameworks send by default changes nothing about the answer. */
  @Test
  void harmlessFieldsAreAcceptedAndChangeNothing() {
    String plain =
        post("/v1/chat/completions", chat(""))
            .statusCode(200)
            .extract()
            .path("choices[0].message.content");
    String withAll =
        post(
                "/v1/chat/completions",
                chat(
                    "\"user\":\"u-1\",\"metadata\":{\"k\":\"v\"},\"store\":false,"
                        + "\"service_tier\":\"auto\",\"parallel_tool_calls\":true,"
                        + "\"response_format\":{\"type\":\"text\"},\"tools\":[],"
                        + "\"tool_choice\":\"none\",\"logit_bias\":{},\"modalities\":[\"text\"],"
                        + "\"presence_penalty\":0,\"frequency_penalty\":0,\"n\":1,\"logprobs\":false"))
            .statusCode(200)
            .extract()
            .path("choices[0].message.content");
    assertEquals(plain, withAll);
    post(
            "/v1/chat/completions",
            chat(
                "\"stream\":true,\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":true}"))
        .statusCode(200);
    post(
            "/v1/completions",
            "{\"model\":\"pirate\",\"prompt\":\"Hi\",\"max_tokens\":4,\"best_of\":1,\"user\":\"x\"}")
        .statusCode(200);
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "tools|\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]",
        "response_format|\"response_format\":{\"type\":\"json_object\"}",
        "response_format|\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}",
        "logit_bias|\"logit_bias\":{\"42\":100}",
        "n|\"n\":2",
        "tool_choice|\"tool_choice\":\"required\"",
        "audio|\"audio\":{\"voice\":\"x\"}",
        "presence_penalty|\"presence_penalty\":2.5",
        "top_logprobs|\"top_logprobs\":3",
        "top_logprobs|\"logprobs\":true,\"top_logprobs\":21",
        "logprobs|\"logprobs\":3"
      })
  void fieldsThatWouldChangeTheMeaningAreRefusedByName(String spec) {
    String[] parts = spec.split("\\|", 2);
    post("/v1/chat/completions", chat(parts[1]))
        .statusCode(400)
        .body("error.param", equalTo(parts[0]))
        .body("error.type", equalTo("invalid_request_error"));
  }

  /** Chat: each content entry has the token, its bytes, its logprob and the alternatives. */
  @Test
  void chatLogprobsNotStreamedAndStreamedAgree() throws Exception {
    JsonNode full =
        JSON.readTree(
            post("/v1/chat/completions", chat("\"logprobs\":true,\"top_logprobs\":3"))
                .statusCode(200)
                .extract()
                .asString());
    JsonNode content = full.at("/choices/0/logprobs/content");
    assertEquals(6, content.size(), full.toString());
    StringBuilder fromBytes = new StringBuilder();
    List<Double> values = new ArrayList<>();
    for (JsonNode e : content) {
      double lp = e.get("logprob").asDouble();
      assertTrue(lp <= 0, e.toString());
      JsonNode top = e.get("top_logprobs");
      assertEquals(3, top.size());
      // Greedy: the chosen token is the most likely one.
      assertEquals(e.get("token").asText(), top.get(0).get("token").asText());
      assertEquals(lp, top.get(0).get("logprob").asDouble(), 1e-6);
      assertTrue(top.get(0).get("logprob").asDouble() >= top.get(1).get("logprob").asDouble());
      byte[] b = new byte[e.get("bytes").size()];
      for (int i = 0; i < b.length; i++) b[i] = (byte) e.get("bytes").get(i).asInt();
      fromBytes.append(new String(b, java.nio.charset.StandardCharsets.UTF_8));
      values.add(lp);
    }
    assertEquals(full.at("/choices/0/message/content").asText(), fromBytes.toString());
    Sse.Result r =
        Sse.post(
            chatUrl.toString(),
            OpenAiApiTest.ACME,
            chat("\"logprobs\":true,\"top_logprobs\":3,\"stream\":true"));
    List<Double> streamed = new ArrayList<>();
    for (JsonNode chunk : r.chunks()) {
      for (JsonNode e : chunk.at("/choices/0/logprobs/content")) {
        streamed.add(e.get("logprob").asDouble());
      }
    }
    assertEquals(values, streamed);
  }

  /** Completions: the legacy shape (tokens, token_logprobs, top_logprobs maps, text_offset). */
  @Test
  void completionsLogprobsUseTheLegacyShape() {
    JsonNode lp =
        given()
            .auth()
            .oauth2(OpenAiApiTest.ACME)
            .contentType(ContentType.JSON)
            .body(
                "{\"model\":\"pirate\",\"prompt\":\"Ada paints a\",\"temperature\":0,\"max_tokens\":5,\"logprobs\":2}")
            .post("/v1/completions")
            .then()
            .statusCode(200)
            .extract()
            .as(JsonNode.class)
            .at("/choices/0/logprobs");
    assertEquals(5, lp.get("tokens").size(), lp.toString());
    assertEquals(5, lp.get("token_logprobs").size());
    assertEquals(5, lp.get("text_offset").size());
    assertEquals(0, lp.get("text_offset").get(0).asInt());
    for (int i = 0; i < 5; i++) {
      JsonNode top = lp.get("top_logprobs").get(i);
      assertEquals(2, top.size(), top.toString());
      assertTrue(top.has(lp.get("tokens").get(i).asText()), top.toString());
    }
  }

  /**
   * The penalties reach the sampler: with the same seed, a sampled answer is reproducible, and
   * OpenAI's penalties change it. (The arithmetic itself is SamplerTest's; on the tiny model the
   * greedy margins are too wide for a penalty of at most 2 to flip a greedy pick.)
   */
  @Test
  void penaltiesChangeASeededSampledAnswer() {
    String body =
        "{\"model\":\"base\",\"prompt\":\"Ada paints a\",\"temperature\":2,\"seed\":7,"
            + "\"max_tokens\":24,\"ignore_eos\":true,\"return_token_ids\":true%s}";
    List<Integer> plain =
        post("/v1/completions", String.format(body, ""))
            .statusCode(200)
            .extract()
            .path("choices[0].token_ids");
    List<Integer> again =
        post("/v1/completions", String.format(body, ",\"presence_penalty\":0"))
            .statusCode(200)
            .extract()
            .path("choices[0].token_ids");
    List<Integer> penalised =
        post(
                "/v1/completions",
                String.format(body, ",\"frequency_penalty\":-2,\"presence_penalty\":-2"))
            .statusCode(200)
            .extract()
            .path("choices[0].token_ids");
    assertEquals(plain, again, "the same seed and no penalty give the same tokens");
    assertTrue(!plain.equals(penalised), "penalties changed nothing: " + plain);
    assertTrue(
        new java.util.HashSet<>(penalised).size() < new java.util.HashSet<>(plain).size(),
        "negative penalties should make the answer repeat more: " + plain + " vs " + penalised);
  }

  @Test
  void modelsListTheFieldsClientsRead() {
    given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
        .get("/v1/models")
        .then()
        .statusCode(200)
        .body("data.find { it.id == 'pirate' }.parent", equalTo("base"))
        .body("data.find { it.id == 'pirate' }.root", containsString("pirate@"))
        .body("data.find { it.id == 'base' }.max_model_len", equalTo(2048));
  }
}
