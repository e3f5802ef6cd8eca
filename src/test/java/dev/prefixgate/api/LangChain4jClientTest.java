package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ChatMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.model.openai.OpenAiStreamingChatModel;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * LangChain4j's OpenAI module, as a Java application would configure it (base URL, key, model
 * name), against the gateway over real HTTP: plain chat and streaming chat return PEFT's exact
 * greedy text (trainer/fixtures/golden.json), and a multi-turn conversation answers exactly what
 * the raw {@code /v1/completions} route (PEFT-exact on any prompt, OpenAiApiTest) gives for the
 * conversation rendered with the documented chat template.
 */
@QuarkusTest
class LangChain4jClientTest {
  @TestHTTPResource("/v1")
  URL v1;

  private OpenAiChatModel chatModel(String key, String model) {
    return OpenAiChatModel.builder()
        .baseUrl(v1.toString())
        .apiKey(key)
        .modelName(model)
        .temperature(0.0)
        .maxTokens(32)
        .build();
  }

  private static String question(String goldenId) {
    String prompt = Golden.of(goldenId).get("prompt").asText();
    return prompt.substring("Human: ".length(), prompt.length() - "\n\nAssistant:".length());
  }

  @ParameterizedTest
  @CsvSource({
    "acme/0,pg-demo-acme,pirate",
    "globex/1,pg-demo-globex,formal",
    "xuetang/4,pg-demo-xuetang,tutor"
  })
  void chatGivesTheGoldenText(String id, String key, String model) {
    assertEquals(Golden.textUntilEos(id), chatModel(key, model).chat(question(id)));
  }

  @ParameterizedTest
  @CsvSource({"initech/0,pg-demo-initech,json", "xuetang/5,pg-demo-xuetang,tutor"})
  void streamingChatGivesTheGoldenText(String id, String key, String model) throws Exception {
    OpenAiStreamingChatModel streaming =
        OpenAiStreamingChatModel.builder()
            .baseUrl(v1.toString())
            .apiKey(key)
            .modelName(model)
            .temperature(0.0)
            .maxTokens(32)
            .build();
    List<String> parts = new ArrayList<>();
    CompletableFuture<ChatResponse> done = new CompletableFuture<>();
    streaming.chat(
        question(id),
        new StreamingChatResponseHandler() {
          @Override
          public void onPartialResponse(String partial) {
            parts.add(partial);
          }

          @Override
          public void onCompleteResponse(ChatResponse response) {
            done.complete(response);
          }

          @Override
          public void onError(Throwable error) {
            done.completeExceptionally(error);
          }
        });
    ChatResponse response = done.get(60, TimeUnit.SECONDS);
    String expected = Golden.textUntilEos(id);
    assertEquals(expected, String.join("", parts));
    assertEquals(expected, response.aiMessage().text());
    // Streamed, not one chunk at the end.
    assertFalse(parts.size() < 3, "only " + parts.size() + " partial responses");
    assertEquals(
        Golden.of(id).get("prompt_ids").size(), response.tokenUsage().inputTokenCount().intValue());
  }

  @ParameterizedTest
  @CsvSource({"acme/0,acme/1,pg-demo-acme,pirate", "globex/2,globex/0,pg-demo-globex,formal"})
  void multiTurnConversationAnswersAsTheTemplatedPrompt(
      String first, String second, String key, String model) {
    OpenAiChatModel chat = chatModel(key, model);
    List<ChatMessage> conversation = new ArrayList<>();
    conversation.add(UserMessage.from(question(first)));
    AiMessage answer = chat.chat(conversation).aiMessage();
    assertEquals(Golden.textUntilEos(first), answer.text());
    conversation.add(answer);
    conversation.add(UserMessage.from(question(second)));
    String reply = chat.chat(conversation).aiMessage().text();

    // The tutorial template (docs/api.md): the assistant turn goes back as " " + its text + "\n\n".
    String rendered =
        "Human: "
            + question(first)
            + "\n\nAssistant: "
            + answer.text()
            + "\n\nHuman: "
            + question(second)
            + "\n\nAssistant:";
    String expected =
        given()
            .auth()
            .oauth2(key)
            .contentType(ContentType.JSON)
            .body(
                ConformanceTest.JSON
                    .createObjectNode()
                    .put("model", model)
                    .put("prompt", rendered)
                    .put("temperature", 0)
                    .put("max_tokens", 32)
                    .toString())
            .post("/v1/completions")
            .then()
            .statusCode(200)
            .extract()
            .path("choices[0].text");
    assertFalse(reply.isEmpty());
    assertEquals(expected, reply);
  }
}
