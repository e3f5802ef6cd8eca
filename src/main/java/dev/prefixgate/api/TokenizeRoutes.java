package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.adapter.ModelResolver;
import dev.prefixgate.adapter.ServingDirectory;
import dev.prefixgate.engine.BloomModel;
import dev.prefixgate.engine.TextTokenizer;
import dev.prefixgate.tenant.Tenant;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.Iterator;
import java.util.Set;
import java.util.logging.Logger;

/**
 * vLLM's {@code POST /tokenize} and {@code POST /detokenize}, with the caller's tenant key and
 * adapter: what a client needs to count tokens against the context limit before it sends a chat.
 *
 * <p>{@code tokens} are the prompt's own ids, exactly what {@code /v1/completions} (a {@code
 * prompt}) or {@code /v1/chat/completions} (the chat-templated {@code messages}) would run. The
 * adapter's virtual tokens have no ids, so they are not in {@code tokens}; they are reported as
 * {@code prefix_tokens}, and {@code max_model_len} is the context left once the prefix took its
 * positions (as in {@code /v1/models}): a request fits when {@code count + max_tokens <=
 * max_model_len}.
 *
 * <p>Nothing here reads the adapter's KV or touches the engine: the model is resolved in the
 * in-memory serving directory only, so tokenizing neither loads an adapter nor moves the prefix
 * cache's hit counters.
 */
@ApplicationScoped
public class TokenizeRoutes {
  private static final Logger LOG = Logger.getLogger(TokenizeRoutes.class.getName());

  private static final Set<String> TOKENIZE_FIELDS =
      Set.of(
          "model",
          "prompt",
          "messages",
          "add_special_tokens",
          "add_generation_prompt",
          "continue_final_message",
          "return_token_strs");
  private static final Set<String> DETOKENIZE_FIELDS = Set.of("model", "tokens");

  @Inject ModelResolver resolver;
  @Inject ServingDirectory directory;
  @Inject BloomModel bloom;
  @Inject PrefixgateConfig config;
  @Inject ObjectMapper json;

  private ChatTemplate template;

  void routes(@Observes Router router) {
    template = ChatTemplate.forModel(bloom.dir());
    for (String path : new String[] {"/tokenize", "/detokenize"}) {
      router.post(path).handler(this::screen);
      router
          .post(path)
          .handler(BodyHandler.create(false).setBodyLimit(OpenAiRoutes.MAX_BODY_BYTES));
    }
    router.post("/tokenize").blockingHandler(rc -> answer(rc, true), false);
    router.post("/detokenize").blockingHandler(rc -> answer(rc, false), false);
  }

  /** As on the /v1 routes: no key or a form body is refused before any byte of the body is read. */
  private void screen(RoutingContext rc) {
    String header = rc.request().getHeader("Authorization");
    if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
      OpenAiRoutes.writeError(rc.response(), ApiError.unauthorized());
      return;
    }
    String type = rc.request().getHeader("Content-Type");
    if (type != null
        && (type.regionMatches(true, 0, "multipart/", 0, 10)
            || type.regionMatches(true, 0, "application/x-www-form-urlencoded", 0, 33))) {
      OpenAiRoutes.writeError(
          rc.response(),
          new ApiError(
              415,
              "invalid_request_error",
              "unsupported_media_type",
              null,
              "This endpoint takes a JSON body (Content-Type: application/json), not " + type));
      return;
    }
    rc.next();
  }

  private void answer(RoutingContext rc, boolean tokenize) {
    try {
      Tenant tenant = authenticate(rc);
      JsonNode body =
          OpenAiRoutes.readBody(json, rc.body() == null ? null : rc.body().asString("UTF-8"));
      if (body == null || !body.isObject()) {
        throw ApiError.invalid(null, "The request body must be a JSON object.");
      }
      Set<String> allowed = tokenize ? TOKENIZE_FIELDS : DETOKENIZE_FIELDS;
      for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
        String f = it.next();
        if (!allowed.contains(f)) {
          throw ApiError.invalid(f, "Unrecognized request argument supplied: " + f);
        }
      }
      JsonNode m = body.get("model");
      if (m != null && !m.isNull() && !m.isTextual()) {
        throw ApiError.invalid("model", "model must be a string, got " + m);
      }
      String requested = m == null || m.isNull() ? null : m.asText();
      if (requested != null && requested.length() > CompletionRequest.MAX_MODEL_CHARS) {
        throw ApiError.invalid(
            "model",
            "model is limited to "
                + CompletionRequest.MAX_MODEL_CHARS
                + " characters, got "
                + requested.length());
      }
      ModelResolver.Target target =
          resolver.target(tenant, requested).orElseThrow(() -> ApiError.modelNotFound(requested));
      ObjectNode out = tokenize ? tokenize(body, target) : detokenize(body);
      rc.response().putHeader("Content-Type", "application/json").end(out.toString());
    } catch (ApiError e) {
      OpenAiRoutes.writeError(rc.response(), e);
    } catch (Exception e) {
      OpenAiRoutes.writeError(rc.response(), ApiError.internal(LOG, "tokenize failed", e));
    }
  }

  private ObjectNode tokenize(JsonNode body, ModelResolver.Target target) {
    JsonNode prompt = body.get("prompt");
    JsonNode messages = body.get("messages");
    boolean hasPrompt = prompt != null && !prompt.isNull();
    boolean hasMessages = messages != null && !messages.isNull();
    if (hasPrompt == hasMessages) {
      throw ApiError.invalid(
          hasPrompt ? "messages" : "prompt", "Send exactly one of prompt or messages");
    }
    if (bool(body, "return_token_strs", false)) {
      throw ApiError.invalid("return_token_strs", "return_token_strs is not supported");
    }
    String text;
    boolean addSpecial;
    if (hasPrompt) {
      if (!prompt.isTextual()) {
        throw ApiError.invalid("prompt", "prompt must be a string, got " + prompt.getNodeType());
      }
      for (String f : new String[] {"add_generation_prompt", "continue_final_message"}) {
        if (body.has(f)) throw ApiError.invalid(f, f + " is only allowed with messages");
      }
      text = prompt.asText();
      addSpecial = bool(body, "add_special_tokens", true);
    } else {
      // The chat route's template ends the prompt at the assistant cue, always: a prompt without
      // it, or one that continues the last message, is not what a chat would run.
      if (!bool(body, "add_generation_prompt", true)) {
        throw ApiError.invalid(
            "add_generation_prompt",
            "add_generation_prompt must be true: the chat template always ends with the"
                + " assistant cue");
      }
      if (bool(body, "continue_final_message", false)) {
        throw ApiError.invalid("continue_final_message", "continue_final_message is not supported");
      }
      text = CompletionRequest.chatPrompt(messages, template);
      addSpecial = bool(body, "add_special_tokens", false);
    }
    int[] ids = bloom.tokenizer().encode(text, addSpecial);
    ObjectNode out = json.createObjectNode();
    out.put("count", ids.length)
        .put("max_model_len", config.engine().maxContext() - target.prefixTokens());
    var tokens = out.putArray("tokens");
    for (int id : ids) tokens.add(id);
    out.put("model", target.model()).put("prefix_tokens", target.prefixTokens());
    return out;
  }

  private ObjectNode detokenize(JsonNode body) {
    JsonNode tokens = body.get("tokens");
    if (tokens == null || !tokens.isArray()) {
      throw ApiError.invalid(
          "tokens",
          "tokens must be an array of token ids, got "
              + (tokens == null ? "nothing" : tokens.getNodeType()));
    }
    TextTokenizer tokenizer = bloom.tokenizer();
    int vocab = tokenizer.vocabSize();
    int[] ids = new int[tokens.size()];
    for (int i = 0; i < ids.length; i++) {
      JsonNode t = tokens.get(i);
      String param = "tokens[" + i + "]";
      if (!t.isIntegralNumber()) {
        throw ApiError.invalid(param, param + " must be an integer token id, got " + t);
      }
      if (!t.canConvertToInt() || t.asInt() < 0 || t.asInt() >= vocab) {
        throw ApiError.invalid(
            param, param + " = " + t + " is out of range: token ids are in [0, " + vocab + ")");
      }
      ids[i] = t.asInt();
    }
    return json.createObjectNode().put("prompt", tokenizer.decode(ids));
  }

  private static boolean bool(JsonNode body, String f, boolean dflt) {
    JsonNode n = body.get(f);
    if (n == null || n.isNull()) return dflt;
    if (!n.isBoolean()) throw ApiError.invalid(f, f + " must be a boolean, got " + n);
    return n.asBoolean();
  }

  private Tenant authenticate(RoutingContext rc) {
    String header = rc.request().getHeader("Authorization");
    if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7))
      throw ApiError.unauthorized();
    try {
      return directory.authenticate(header.substring(7).trim()).orElseThrow(ApiError::unauthorized);
    } catch (ServingDirectory.RegistryUnavailable e) {
      throw ApiError.unavailable(
          "The adapter registry is unavailable (" + e.getMessage() + "); retry shortly.");
    }
  }
}
