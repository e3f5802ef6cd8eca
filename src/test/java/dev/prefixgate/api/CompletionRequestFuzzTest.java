package dev.prefixgate.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.prefixgate.engine.SamplingParams;
import java.nio.charset.StandardCharsets;

/**
 * The /v1 request path up to the engine: body bytes → UTF-8 text → JSON → {@link
 * CompletionRequest}, for chat and for completions. A request either parses into one that the
 * engine accepts, or is refused with a 4xx {@link ApiError}; anything else is a finding.
 */
class CompletionRequestFuzzTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @FuzzTest(maxDuration = "10s")
  void parse(byte[] body) {
    for (boolean chat : new boolean[] {true, false}) {
      try {
        // As Vert.x's Buffer.toString("UTF-8") decodes the body.
        JsonNode json = OpenAiRoutes.readBody(JSON, new String(body, StandardCharsets.UTF_8));
        CompletionRequest req = CompletionRequest.parse(json, chat, ChatTemplate.TUTORIAL);
        assertTrue(!req.prompt().isEmpty(), "an accepted request has a prompt");
        assertTrue(req.maxTokens() == null || req.maxTokens() >= 1);
        // What OpenAiRoutes.start builds from it must hold: a 400 there would say the parser let
        // through something it should have named.
        new SamplingParams(
            req.maxTokens() == null ? 1 : req.maxTokens(),
            req.temperature(),
            req.topK(),
            req.topP(),
            req.repetitionPenalty(),
            req.seed(),
            req.stop(),
            req.ignoreEos(),
            req.logprobs(),
            req.topLogprobs(),
            req.presencePenalty(),
            req.frequencyPenalty());
      } catch (ApiError e) {
        assertTrue(e.status() >= 400 && e.status() < 500, "status " + e.status());
        assertEquals("invalid_request_error", e.type);
      }
    }
  }
}
