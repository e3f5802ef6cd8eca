package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.allOf;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.demo.DemoTenants;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.response.ValidatableResponse;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * vLLM's {@code /tokenize} and {@code /detokenize} (docs/api.md): the ids are the tokenizer's ids
 * that PEFT's golden vectors were made with, the chat template is applied to {@code messages}, the
 * adapter's prefix is reported beside the count, and every bad input is a 4xx naming the value.
 */
@QuarkusTest
class TokenizeTest {
  static final ObjectMapper JSON = new ObjectMapper();

  @Inject PrefixgateConfig config;

  static ValidatableResponse post(String path, String key, Object body) {
    return given()
        .auth()
        .oauth2(key)
        .contentType(ContentType.JSON)
        .body(body.toString())
        .post(path)
        .then();
  }

  static DemoTenants.Demo demo(String tenant) {
    return DemoTenants.DEMO.stream().filter(d -> d.tenant().equals(tenant)).findFirst().get();
  }

  static int virtualTokens(String tenant) throws IOException {
    return JSON.readTree(
            Files.readAllBytes(Path.of("trainer/fixtures/adapters", tenant, "adapter_config.json")))
        .get("num_virtual_tokens")
        .asInt();
  }

  static List<Integer> ints(JsonNode array) {
    List<Integer> out = new ArrayList<>();
    for (JsonNode x : array) out.add(x.asInt());
    return out;
  }

  /** A raw prompt gives the golden prompt ids; the count and context room include the prefix. */
  @ParameterizedTest
  @ValueSource(
      strings = {"acme/0", "acme/3", "globex/1", "initech/2", "xuetang/4", "xuetang/5", "acme/5"})
  void promptGivesTheGoldenIds(String id) throws IOException {
    JsonNode golden = Golden.of(id);
    DemoTenants.Demo d = demo(golden.get("adapter").asText());
    ObjectNode body =
        JSON.createObjectNode()
            .put("model", d.adapter())
            .put("prompt", golden.get("prompt").asText());
    JsonNode out =
        JSON.readTree(post("/tokenize", d.key(), body).statusCode(200).extract().asString());
    List<Integer> expected = ints(golden.get("prompt_ids"));
    assertEquals(expected, ints(out.get("tokens")));
    assertEquals(expected.size(), out.get("count").asInt());
    int prefix = virtualTokens(d.tenant());
    assertEquals(prefix, out.get("prefix_tokens").asInt());
    assertEquals(config.engine().maxContext() - prefix, out.get("max_model_len").asInt());
    assertEquals(d.adapter() + "@", out.get("model").asText().replaceAll("@.*", "@"));
  }

  /** messages go through the chat template: the tutorial prompt of PEFT's golden case. */
  @ParameterizedTest
  @ValueSource(strings = {"acme/0", "globex/1", "xuetang/4", "initech/5"})
  void messagesAreTemplated(String id) throws IOException {
    JsonNode golden = Golden.of(id);
    String prompt = golden.get("prompt").asText();
    String user = prompt.substring("Human: ".length(), prompt.length() - "\n\nAssistant:".length());
    DemoTenants.Demo d = demo(golden.get("adapter").asText());
    ObjectNode body = JSON.createObjectNode().put("model", d.adapter());
    body.putArray("messages").addObject().put("role", "user").put("content", user);
    JsonNode out =
        JSON.readTree(post("/tokenize", d.key(), body).statusCode(200).extract().asString());
    assertEquals(ints(golden.get("prompt_ids")), ints(out.get("tokens")));
  }

  /** A multi-turn chat counts what the chat route would run, assistant turn and system included. */
  @Test
  void multiTurnMatchesTheRenderedTemplate() throws IOException {
    String messages =
        "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
            + "{\"role\":\"user\",\"content\":\"Hi\"},"
            + "{\"role\":\"assistant\",\"content\":\"Arr!\"},"
            + "{\"role\":\"user\",\"content\":\"What color is the apple?\"}]";
    String rendered =
        "Be brief.\n\nHuman: Hi\n\nAssistant: Arr!\n\nHuman: What color is the apple?\n\nAssistant:";
    JsonNode viaMessages =
        JSON.readTree(
            post("/tokenize", OpenAiApiTest.ACME, "{\"messages\":" + messages + "}")
                .statusCode(200)
                .extract()
                .asString());
    JsonNode viaPrompt =
        JSON.readTree(
            post(
                    "/tokenize",
                    OpenAiApiTest.ACME,
                    JSON.createObjectNode().put("prompt", rendered).put("add_special_tokens", true))
                .statusCode(200)
                .extract()
                .asString());
    assertEquals(ints(viaPrompt.get("tokens")), ints(viaMessages.get("tokens")));
    // No model: the tenant's default adapter, as on /v1.
    assertEquals(virtualTokens("acme"), viaMessages.get("prefix_tokens").asInt());
  }

  /** detokenize(tokenize(text)) is the text, Chinese included (multi-byte tokens). */
  @ParameterizedTest
  @ValueSource(strings = {"acme/1", "xuetang/5", "globex/3"})
  void detokenizeRoundTrips(String id) throws IOException {
    JsonNode golden = Golden.of(id);
    DemoTenants.Demo d = demo(golden.get("adapter").asText());
    ObjectNode body = JSON.createObjectNode().put("model", d.adapter());
    body.set("tokens", golden.get("prompt_ids"));
    post("/detokenize", d.key(), body)
        .statusCode(200)
        .body("prompt", equalTo(golden.get("prompt").asText()));
    String text = "Arr, matey! 同学你好 \u00e9t\u00e9 🍎";
    JsonNode tokens =
        JSON.readTree(
                post("/tokenize", d.key(), JSON.createObjectNode().put("prompt", text))
                    .statusCode(200)
                    .extract()
                    .asString())
            .get("tokens");
    post("/detokenize", d.key(), JSON.createObjectNode().set("tokens", tokens))
        .statusCode(200)
        .body("prompt", equalTo(text));
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "/tokenize|{\"model\":\"formal\",\"prompt\":\"x\"}|404|formal",
        "/tokenize|{\"model\":\"nope@3\",\"prompt\":\"x\"}|404|nope@3",
        "/detokenize|{\"model\":\"nope\",\"tokens\":[1]}|404|nope",
        "/tokenize|{\"prompt\":42}|400|prompt",
        "/tokenize|{\"model\":7,\"prompt\":\"x\"}|400|model",
        "/tokenize|{}|400|prompt",
        "/tokenize|{\"prompt\":\"x\",\"messages\":[]}|400|messages",
        "/tokenize|{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}|400|robot",
        "/tokenize|{\"messages\":\"Hi\"}|400|messages",
        "/tokenize|{\"prompt\":\"x\",\"add_special_tokens\":\"yes\"}|400|add_special_tokens",
        "/tokenize|{\"prompt\":\"x\",\"chat_template\":\"{{x}}\"}|400|chat_template",
        "/tokenize|{\"prompt\":\"x\",\"return_token_strs\":true}|400|return_token_strs",
        "/tokenize|{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
            + "\"add_generation_prompt\":false}|400|add_generation_prompt",
        "/detokenize|{\"tokens\":[1,4096]}|400|tokens[1] = 4096",
        "/detokenize|{\"tokens\":[-1]}|400|tokens[0] = -1",
        "/detokenize|{\"tokens\":[99999999999999]}|400|99999999999999",
        "/detokenize|{\"tokens\":[1,\"a\"]}|400|tokens[1]",
        "/detokenize|{\"tokens\":[1.5]}|400|1.5",
        "/detokenize|{\"tokens\":\"1 2\"}|400|tokens",
        "/detokenize|{\"prompt\":\"x\"}|400|prompt",
        "/detokenize|[1,2]|400|JSON object",
        "/detokenize|{\"tokens\":|400|not valid JSON",
      })
  void badInputIsA4xxNamingTheValue(String path, String body, int status, String named) {
    post(path, OpenAiApiTest.ACME, body)
        .statusCode(status)
        .contentType(ContentType.JSON)
        .body("error.message", containsString(named));
  }

  @Test
  void theOpenApiDocumentDescribesBothRoutes() {
    given()
        .port(OpenAiApiTest.managementPort())
        .get("/q/openapi")
        .then()
        .statusCode(200)
        .body(allOf(containsString("/tokenize:"), containsString("/detokenize:")))
        .body(containsString("prefix_tokens"));
  }

  @Test
  void keyAndJsonAreRequired() {
    given()
        .contentType(ContentType.JSON)
        .body("{\"prompt\":\"x\"}")
        .post("/tokenize")
        .then()
        .statusCode(401);
    post("/detokenize", "pg-wrong-key", "{\"tokens\":[1]}").statusCode(401);
    given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
        .contentType("application/x-www-form-urlencoded")
        .body("prompt=x")
        .post("/tokenize")
        .then()
        .statusCode(415)
        .body("error.message", allOf(containsString("JSON")));
  }
}
