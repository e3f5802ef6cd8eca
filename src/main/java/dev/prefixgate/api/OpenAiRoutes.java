package dev.prefixgate.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.adapter.AdapterVersion;
import dev.prefixgate.adapter.ModelResolver;
import dev.prefixgate.adapter.ServingDirectory;
import dev.prefixgate.engine.BloomModel;
import dev.prefixgate.engine.ContextWindow;
import dev.prefixgate.engine.Engine;
import dev.prefixgate.engine.GenerationRequest;
import dev.prefixgate.engine.ModelWeights;
import dev.prefixgate.engine.QueueFullException;
import dev.prefixgate.engine.SamplingParams;
import dev.prefixgate.tenant.Tenant;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.logging.Logger;

/**
 * The OpenAI-compatible endpoints, as Vert.x routes: streaming needs exact control of status,
 * headers and the SSE framing that the OpenAI SDKs parse, and of client disconnects.
 *
 * <p>Handlers run on worker threads (they touch the database); generated tokens are written by the
 * engine thread through {@link Responder}.
 */
@ApplicationScoped
public class OpenAiRoutes {
  private static final Logger LOG = Logger.getLogger(OpenAiRoutes.class.getName());
  static final int MAX_BODY_BYTES = 4 * 1024 * 1024;

  @Inject ModelResolver resolver;
  @Inject ServingDirectory directory;
  @Inject BloomModel bloom;
  @Inject Engine engine;
  @Inject ModelWeights weights;
  @Inject PrefixgateConfig config;
  @Inject ApiMetrics metrics;
  @Inject ObjectMapper json;

  private ChatTemplate template;

  void routes(@Observes Router router) {
    template = ChatTemplate.forModel(bloom.dir());
    for (String path : new String[] {"/v1/chat/completions", "/v1/completions"}) {
      // Before any byte of the body is read: no key, or a form upload, is refused at once.
      router.post(path).handler(this::screen);
      // JSON only: no multipart file uploads reach the disk.
      router.post(path).handler(BodyHandler.create(false).setBodyLimit(MAX_BODY_BYTES));
    }
    router.post("/v1/chat/completions").blockingHandler(rc -> complete(rc, true), false);
    router.post("/v1/completions").blockingHandler(rc -> complete(rc, false), false);
    router.get("/v1/models").blockingHandler(this::models, false);
  }

  /** Cheap checks that need no body and no database: a bearer header, and a JSON body. */
  private void screen(RoutingContext rc) {
    String header = rc.request().getHeader("Authorization");
    if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
      metrics.request("-", 401);
      writeError(rc.response(), ApiError.unauthorized());
      return;
    }
    String type = rc.request().getHeader("Content-Type");
    if (type != null
        && (type.regionMatches(true, 0, "multipart/", 0, 10)
            || type.regionMatches(true, 0, "application/x-www-form-urlencoded", 0, 33))) {
      metrics.request("-", 415);
      writeError(
          rc.response(),
          new ApiError(
              415,
              "invalid_request_error",
              "unsupported_media_type",
              null,
              "The /v1 endpoints take a JSON body (Content-Type: application/json), not " + type));
      return;
    }
    rc.next();
  }

  private void complete(RoutingContext rc, boolean chat) {
    String tenantTag = "-";
    try {
      Tenant tenant = authenticate(rc);
      tenantTag = tenant.id;
      // An empty body has no string at all: it is a client's mistake, not a server fault.
      JsonNode body = readBody(json, rc.body() == null ? null : rc.body().asString("UTF-8"));
      CompletionRequest req = CompletionRequest.parse(body, chat, template);
      ModelResolver.Resolved model =
          resolver
              .resolve(tenant, req.model())
              .orElseThrow(() -> ApiError.modelNotFound(req.model()));
      try {
        start(rc, tenant, req, model, chat);
      } catch (RuntimeException e) {
        model.close();
        throw e;
      }
    } catch (ApiError e) {
      metrics.request(tenantTag, e.status);
      writeError(rc.response(), e);
    } catch (jakarta.persistence.PersistenceException e) {
      // An adapter not in the prefix cache needs its bytes from the database, which is away.
      metrics.request(tenantTag, 503);
      rc.response().putHeader("Retry-After", "5");
      writeError(
          rc.response(),
          ApiError.unavailable(
              "This adapter is not loaded and the adapter registry is unavailable; retry"
                  + " shortly."));
    } catch (Exception e) {
      metrics.request(tenantTag, 500);
      writeError(rc.response(), ApiError.internal(LOG, "request failed", e));
    }
  }

  /** The body as JSON: null when empty or blank, an {@link ApiError} (400) when not JSON. */
  static JsonNode readBody(ObjectMapper json, String text) {
    try {
      return text == null || text.isBlank() ? null : json.readTree(text);
    } catch (JsonProcessingException e) {
      throw new ApiError(
          400,
          "invalid_request_error",
          "invalid_json",
          null,
          "The request body is not valid JSON: " + e.getOriginalMessage());
    }
  }

  private void start(
      RoutingContext rc,
      Tenant tenant,
      CompletionRequest req,
      ModelResolver.Resolved model,
      boolean chat) {
    int[] ids = bloom.tokenizer().encode(req.prompt());
    int prefix = model.lease() == null ? 0 : model.lease().kv().length();
    int maxTokens;
    try {
      maxTokens =
          engine
              .contextWindow()
              .completionBudget(
                  prefix, ids.length, req.maxTokens(), config.engine().defaultMaxTokens());
    } catch (ContextWindow.ExceededException e) {
      throw new ApiError(
          400,
          "invalid_request_error",
          "context_length_exceeded",
          e.completionAlone() || req.maxTokens() != null
              ? "max_tokens"
              : chat ? "messages" : "prompt",
          e.getMessage());
    }
    SamplingParams params =
        new SamplingParams(
            maxTokens,
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
    Responder responder =
        new Responder(
            rc.response(),
            json,
            req,
            model,
            chat,
            tenant.id,
            metrics,
            ids.length,
            bloom.tokenizer());
    try {
      var handle =
          engine.submit(
              new GenerationRequest(
                  tenant.id, model.lease() == null ? null : model.lease().kv(), ids, params),
              responder);
      responder.started(handle);
    } catch (QueueFullException e) {
      rc.response().putHeader("Retry-After", "1");
      throw new ApiError(
          429,
          "rate_limit_error",
          "server_busy",
          null,
          "The server is busy (" + e.queued() + " requests waiting); retry shortly.");
    } catch (IllegalArgumentException e) {
      throw ApiError.invalid(null, e.getMessage());
    }
  }

  private void models(RoutingContext rc) {
    try {
      Tenant tenant = authenticate(rc);
      ObjectNode out = json.createObjectNode().put("object", "list");
      ArrayNode data = out.putArray("data");
      if (tenant.allowBase) {
        data.addObject()
            .put("id", config.model().baseName())
            .put("object", "model")
            .put("created", 0)
            .put("owned_by", "prefixgate")
            .put("root", config.model().baseName())
            .putNull("parent")
            .put("max_model_len", config.engine().maxContext())
            .set("quantization", quantization());
      }
      for (AdapterVersion a : directory.activeAdapters(tenant.id)) {
        data.addObject()
            .put("id", a.name)
            .put("object", "model")
            .put("created", a.createdAt.getEpochSecond())
            .put("owned_by", tenant.id)
            .put("version", a.version)
            .put("prefix_tokens", a.numVirtualTokens)
            .put("default", a.name.equals(tenant.defaultAdapter))
            // vLLM's fields for an adapter: what it is (name@version), what it runs on, and the
            // context left to a request once the prefix takes its positions.
            .put("root", a.name + "@" + a.version)
            .put("parent", config.model().baseName())
            .put("max_model_len", config.engine().maxContext() - a.numVirtualTokens)
            .set("quantization", quantization());
      }
      rc.response().putHeader("Content-Type", "application/json").end(out.toString());
    } catch (ApiError e) {
      writeError(rc.response(), e);
    }
  }

  /**
   * The served weights, on every entry (an adapter runs on the same graph): {@code weights} is
   * {@code fp32}, {@code int8} or {@code int4}; quantized graphs add how.
   */
  private ObjectNode quantization() {
    ObjectNode q =
        json.createObjectNode().put("weights", weights.weights()).put("bits", weights.bits());
    if (weights.quantized()) {
      weights.method().ifPresent(m -> q.put("method", m));
      q.put("block_size", weights.blockSize())
          .put("symmetric", weights.symmetric())
          .put("accuracy_level", weights.accuracyLevel());
      weights.sourceOnnxSha256().ifPresent(s -> q.put("source_onnx_sha256", s));
    }
    return q;
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

  static void writeError(HttpServerResponse response, ApiError e) {
    if (response.ended() || response.closed()) return;
    response.setStatusCode(e.status).putHeader("Content-Type", "application/json").end(e.json());
  }
}
