package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.prefixgate.engine.SamplingParams;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * A validated {@code /v1/chat/completions} or {@code /v1/completions} request. Every refusal is an
 * {@link ApiError} naming the parameter and the allowed range.
 *
 * @param prompt the chat-templated or raw prompt text
 * @param maxTokens null when the request did not say (the server picks a default)
 * @param logprobs report each chosen token's log-probability
 * @param topLogprobs and this many alternatives per position (chat: {@code top_logprobs},
 *     completions: the number {@code logprobs})
 */
record CompletionRequest(
    String model,
    String prompt,
    Integer maxTokens,
    double temperature,
    double topP,
    int topK,
    double repetitionPenalty,
    Long seed,
    List<String> stop,
    boolean stream,
    boolean includeUsage,
    boolean ignoreEos,
    boolean returnTokenIds,
    boolean logprobs,
    int topLogprobs,
    double presencePenalty,
    double frequencyPenalty) {

  private static final Set<String> COMMON =
      Set.of(
          "model",
          "max_tokens",
          "temperature",
          "top_p",
          "n",
          "stream",
          "stream_options",
          "stop",
          "seed",
          "user",
          "presence_penalty",
          "frequency_penalty",
          "logprobs",
          "top_k",
          "repetition_penalty",
          "ignore_eos",
          "return_token_ids",
          // Accepted and checked below: refused only where honouring them is not possible and
          // ignoring them would change what the caller gets.
          "logit_bias",
          "response_format",
          "tools",
          "tool_choice",
          "functions",
          "function_call",
          "audio",
          "modalities",
          // Accepted and ignored: they change nothing about the generated text.
          "metadata",
          "store",
          "service_tier",
          "parallel_tool_calls",
          "reasoning_effort",
          "prediction",
          "web_search_options");
  private static final Set<String> CHAT_ONLY =
      Set.of("messages", "max_completion_tokens", "top_logprobs");
  private static final Set<String> COMPLETION_ONLY = Set.of("prompt", "echo", "suffix", "best_of");

  static CompletionRequest parse(JsonNode body, boolean chat, ChatTemplate template) {
    if (body == null || !body.isObject()) {
      throw ApiError.invalid(null, "The request body must be a JSON object.");
    }
    for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
      String f = it.next();
      if (!COMMON.contains(f) && !(chat ? CHAT_ONLY : COMPLETION_ONLY).contains(f)) {
        throw ApiError.invalid(f, "Unrecognized request argument supplied: " + f);
      }
    }
    String model = optText(body, "model");
    if (model != null && model.length() > MAX_MODEL_CHARS) {
      throw ApiError.invalid(
          "model", "model is limited to " + MAX_MODEL_CHARS + " characters, got " + model.length());
    }
    String prompt =
        chat ? chatPrompt(body.get("messages"), template) : rawPrompt(body.get("prompt"));
    if (!chat) {
      if (body.path("echo").asBoolean(false))
        throw ApiError.invalid("echo", "echo is not supported");
      if (body.hasNonNull("suffix")) throw ApiError.invalid("suffix", "suffix is not supported");
    }
    Integer maxTokens =
        optInt(
            body,
            chat && body.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
    double temperature = optNumber(body, "temperature", 1.0);
    double topP = optNumber(body, "top_p", 1.0);
    Integer topK = optInt(body, "top_k");
    double penalty = optNumber(body, "repetition_penalty", 1.0);
    Integer n = optInt(body, "n");
    if (n != null && n != 1) throw ApiError.invalid("n", "Only n=1 is supported, got " + n);
    double presencePenalty = optNumber(body, "presence_penalty", 0);
    double frequencyPenalty = optNumber(body, "frequency_penalty", 0);
    boolean logprobs;
    int topLogprobs;
    if (chat) {
      JsonNode lp = body.get("logprobs");
      if (lp != null && !lp.isNull() && !lp.isBoolean()) {
        throw ApiError.invalid("logprobs", "logprobs must be true or false, got " + lp);
      }
      logprobs = lp != null && lp.asBoolean(false);
      Integer top = optInt(body, "top_logprobs");
      topLogprobs = top == null ? 0 : top;
      if (topLogprobs > 0 && !logprobs) {
        throw ApiError.invalid("top_logprobs", "top_logprobs needs logprobs: true");
      }
    } else {
      // The legacy completions API: logprobs is the number of alternatives, at most 5.
      Integer lp = optInt(body, "logprobs");
      if (lp != null && (lp < 0 || lp > MAX_COMPLETION_LOGPROBS)) {
        throw ApiError.invalid(
            "logprobs", "logprobs must be in [0, " + MAX_COMPLETION_LOGPROBS + "], got " + lp);
      }
      logprobs = lp != null;
      topLogprobs = lp == null ? 0 : lp;
      Integer bestOf = optInt(body, "best_of");
      if (bestOf != null && bestOf != 1) {
        throw ApiError.invalid("best_of", "Only best_of=1 is supported, got " + bestOf);
      }
    }
    refuseMeaningChanging(body);
    try {
      // The ranges are the engine's (one copy, in SamplingParams); checked here so that a bad
      // value is refused before tokenizing, naming the field.
      SamplingParams.checkRanges(
          maxTokens == null ? 1 : maxTokens,
          temperature,
          topK == null ? 0 : topK,
          topP,
          penalty,
          topLogprobs,
          presencePenalty,
          frequencyPenalty);
    } catch (SamplingParams.InvalidParameterException e) {
      throw ApiError.invalid(e.parameter(), e.getMessage());
    }
    Long seed = null;
    if (body.hasNonNull("seed")) {
      if (!body.get("seed").canConvertToLong() || !body.get("seed").isIntegralNumber()) {
        throw ApiError.invalid("seed", "seed must be an integer, got " + body.get("seed"));
      }
      seed = body.get("seed").asLong();
    }
    List<String> stop = stops(body.get("stop"));
    boolean stream = optBool(body, "stream");
    JsonNode so = body.get("stream_options");
    boolean includeUsage = false;
    if (so != null && !so.isNull()) {
      if (!so.isObject())
        throw ApiError.invalid("stream_options", "stream_options must be an object");
      if (!stream)
        throw ApiError.invalid("stream_options", "stream_options is only allowed with stream=true");
      includeUsage = optBool(so, "include_usage");
    }
    return new CompletionRequest(
        model,
        prompt,
        maxTokens,
        temperature,
        topP,
        topK == null ? 0 : topK,
        penalty,
        seed,
        stop,
        stream,
        includeUsage,
        optBool(body, "ignore_eos"),
        optBool(body, "return_token_ids"),
        logprobs,
        topLogprobs,
        presencePenalty,
        frequencyPenalty);
  }

  static final int MAX_COMPLETION_LOGPROBS = 5;

  /**
   * Fields a client may send that this server cannot honour, where ignoring them would silently
   * change what the caller gets: a 400 that says so. Their harmless values (no tools, text output,
   * an empty bias) are accepted.
   */
  private static void refuseMeaningChanging(JsonNode body) {
    JsonNode bias = body.get("logit_bias");
    if (bias != null && !bias.isNull() && !(bias.isObject() && bias.isEmpty())) {
      throw ApiError.invalid("logit_bias", "logit_bias is not supported");
    }
    JsonNode format = body.get("response_format");
    if (format != null && !format.isNull()) {
      String type = format.path("type").asText("");
      if (!type.equals("text")) {
        throw ApiError.invalid(
            "response_format",
            "response_format type '"
                + truncate(type)
                + "' is not supported: only text (no JSON mode or schema)");
      }
    }
    String toolChoice =
        body.path("tool_choice").isTextual() ? body.get("tool_choice").asText() : null;
    boolean noTools = toolChoice != null && toolChoice.equals("none");
    for (String f : new String[] {"tools", "functions"}) {
      JsonNode t = body.get(f);
      if (t != null && !t.isNull() && !(t.isArray() && t.isEmpty()) && !noTools) {
        throw ApiError.invalid(
            f, "tool calling is not supported: send no " + f + " or tool_choice \"none\"");
      }
    }
    JsonNode tc = body.get("tool_choice");
    if (tc != null
        && !tc.isNull()
        && !(tc.isTextual() && Set.of("none", "auto").contains(tc.asText()))) {
      throw ApiError.invalid("tool_choice", "tool calling is not supported: only \"none\"");
    }
    JsonNode fc = body.get("function_call");
    if (fc != null
        && !fc.isNull()
        && !(fc.isTextual() && Set.of("none", "auto").contains(fc.asText()))) {
      throw ApiError.invalid("function_call", "function calling is not supported");
    }
    JsonNode audio = body.get("audio");
    if (audio != null && !audio.isNull()) {
      throw ApiError.invalid("audio", "audio output is not supported");
    }
    JsonNode modalities = body.get("modalities");
    if (modalities != null && !modalities.isNull()) {
      for (JsonNode m : modalities) {
        if (!m.asText("").equals("text")) {
          throw ApiError.invalid("modalities", "only the text modality is supported");
        }
      }
    }
  }

  private static String truncate(String s) {
    return s.length() > 40 ? s.substring(0, 40) + "…" : s;
  }

  /** Documented limits on what a client sends (the body itself is capped at 4 MiB). */
  static final int MAX_MESSAGES = 512;

  static final int MAX_STOP_CHARS = 256;
  static final int MAX_MODEL_CHARS = 200;

  /** The chat-templated prompt of {@code messages}, validated as the chat route does. */
  static String chatPrompt(JsonNode messages, ChatTemplate template) {
    if (messages == null || !messages.isArray() || messages.isEmpty()) {
      throw ApiError.invalid("messages", "messages must be a non-empty array");
    }
    if (messages.size() > MAX_MESSAGES) {
      throw ApiError.invalid(
          "messages", "At most " + MAX_MESSAGES + " messages are allowed, got " + messages.size());
    }
    List<ChatTemplate.Message> out = new ArrayList<>();
    for (int i = 0; i < messages.size(); i++) {
      JsonNode m = messages.get(i);
      String param = "messages[" + i + "]";
      if (!m.isObject()) throw ApiError.invalid(param, param + " must be an object");
      String role = m.path("role").asText("");
      if (!Set.of("system", "user", "assistant").contains(role)) {
        throw ApiError.invalid(
            param + ".role",
            "Invalid role '" + role + "' in " + param + ": use system, user or assistant");
      }
      if (role.equals("system") && i != 0) {
        throw ApiError.invalid(param + ".role", "A system message is only allowed first");
      }
      String content = content(m.get("content"), param + ".content");
      out.add(new ChatTemplate.Message(role, content));
    }
    if (!out.get(out.size() - 1).role().equals("user")) {
      throw ApiError.invalid("messages", "The last message must have role 'user'");
    }
    return template.render(out);
  }

  /** A string, or OpenAI's array of {@code {"type":"text","text":...}} parts. */
  private static String content(JsonNode c, String param) {
    String text;
    if (c != null && c.isTextual()) {
      text = c.asText();
    } else if (c != null && c.isArray()) {
      StringBuilder sb = new StringBuilder();
      for (JsonNode part : c) {
        if (!part.path("type").asText("").equals("text") || !part.path("text").isTextual()) {
          throw ApiError.invalid(param, "Only text content parts are supported");
        }
        sb.append(part.get("text").asText());
      }
      text = sb.toString();
    } else {
      throw ApiError.invalid(param, param + " must be a string");
    }
    if (text.isBlank()) throw ApiError.invalid(param, param + " must not be empty");
    return text;
  }

  private static String rawPrompt(JsonNode p) {
    if (p == null || !p.isTextual()) throw ApiError.invalid("prompt", "prompt must be a string");
    if (p.asText().isEmpty()) throw ApiError.invalid("prompt", "prompt must not be empty");
    return p.asText();
  }

  private static List<String> stops(JsonNode s) {
    if (s == null || s.isNull()) return List.of();
    List<String> out = new ArrayList<>();
    if (s.isTextual()) {
      out.add(s.asText());
    } else if (s.isArray()) {
      for (JsonNode x : s) {
        if (!x.isTextual())
          throw ApiError.invalid("stop", "stop must be a string or an array of strings");
        out.add(x.asText());
      }
    } else {
      throw ApiError.invalid("stop", "stop must be a string or an array of strings");
    }
    if (out.size() > 4)
      throw ApiError.invalid("stop", "At most 4 stop sequences, got " + out.size());
    for (String x : out) {
      if (x.isEmpty()) throw ApiError.invalid("stop", "Stop sequences must not be empty");
      if (x.length() > MAX_STOP_CHARS) {
        throw ApiError.invalid(
            "stop",
            "Stop sequences are limited to " + MAX_STOP_CHARS + " characters, got " + x.length());
      }
    }
    return out;
  }

  private static String optText(JsonNode body, String f) {
    JsonNode n = body.get(f);
    if (n == null || n.isNull()) return null;
    if (!n.isTextual()) throw ApiError.invalid(f, f + " must be a string");
    return n.asText();
  }

  private static Integer optInt(JsonNode body, String f) {
    JsonNode n = body.get(f);
    if (n == null || n.isNull()) return null;
    if (!n.isIntegralNumber() || !n.canConvertToInt())
      throw ApiError.invalid(f, f + " must be an integer, got " + n);
    return n.asInt();
  }

  private static double optNumber(JsonNode body, String f, double dflt) {
    JsonNode n = body.get(f);
    if (n == null || n.isNull()) return dflt;
    if (!n.isNumber()) throw ApiError.invalid(f, f + " must be a number, got " + n);
    return n.asDouble();
  }

  private static boolean optBool(JsonNode body, String f) {
    JsonNode n = body.get(f);
    if (n == null || n.isNull()) return false;
    if (!n.isBoolean()) throw ApiError.invalid(f, f + " must be a boolean, got " + n);
    return n.asBoolean();
  }
}
