package dev.prefixgate.api;

/** An OpenAI-style error: {@code {"error": {"message", "type", "param", "code"}}} with a status. */
public final class ApiError extends RuntimeException {
  final int status;
  final String type;
  final String code;
  final String param;

  public ApiError(int status, String type, String code, String param, String message) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
  }

  public static ApiError invalid(String param, String message) {
    return new ApiError(400, "invalid_request_error", "invalid_value", param, message);
  }

  public static ApiError unauthorized() {
    return new ApiError(
        401,
        "invalid_request_error",
        "invalid_api_key",
        null,
        "Missing or invalid API key: send 'Authorization: Bearer <key>'.");
  }

  public static ApiError modelNotFound(String model) {
    return new ApiError(
        404,
        "invalid_request_error",
        "model_not_found",
        "model",
        "The model '" + model + "' does not exist or you do not have access to it.");
  }

  public static ApiError notFound(String what) {
    return new ApiError(404, "invalid_request_error", "not_found", null, what + " does not exist");
  }

  /**
   * A server fault, logged with a reference that the client sees instead of the exception's text
   * (which may carry internals: SQL, paths, class names).
   */
  public static ApiError internal(java.util.logging.Logger log, String what, Throwable cause) {
    String ref = java.util.UUID.randomUUID().toString().substring(0, 8);
    log.log(java.util.logging.Level.SEVERE, what + " (reference " + ref + ")", cause);
    return new ApiError(
        500,
        "server_error",
        "internal_error",
        null,
        "The server failed to handle this request (reference " + ref + "); it is logged.");
  }

  /** The database (or another dependency) cannot be reached; nothing was changed. */
  public static ApiError unavailable(String message) {
    return new ApiError(503, "server_error", "service_unavailable", null, message);
  }

  public static ApiError conflict(String message) {
    return new ApiError(409, "invalid_request_error", "conflict", null, message);
  }

  /** The JSON body, {@code {"error": {...}}}. */
  public java.util.Map<String, Object> body() {
    java.util.Map<String, Object> e = new java.util.LinkedHashMap<>();
    e.put("message", getMessage());
    e.put("type", type);
    e.put("param", param);
    e.put("code", code);
    return java.util.Map.of("error", e);
  }

  private static final com.fasterxml.jackson.databind.ObjectMapper JSON =
      new com.fasterxml.jackson.databind.ObjectMapper();

  /**
   * The same body as text: the one way every route (JAX-RS through {@link ErrorMapper} and {@link
   * AdminAuth}, Vert.x through {@code OpenAiRoutes.writeError}) writes an error.
   */
  public String json() {
    try {
      return JSON.writeValueAsString(body());
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException("a map of strings always serialises", e);
    }
  }

  public int status() {
    return status;
  }
}
