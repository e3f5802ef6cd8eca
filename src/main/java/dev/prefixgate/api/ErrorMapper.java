package dev.prefixgate.api;

import dev.prefixgate.engine.AdapterFormatException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.Response;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/** Writes every error of the JAX-RS endpoints (admin API) as OpenAI-style error JSON. */
public class ErrorMapper {
  private static final Logger LOG = Logger.getLogger(ErrorMapper.class.getName());

  @ServerExceptionMapper
  public Response api(ApiError e) {
    return Response.status(e.status()).entity(e.json()).type("application/json").build();
  }

  @ServerExceptionMapper
  public Response adapter(AdapterFormatException e) {
    return api(
        new ApiError(400, "invalid_request_error", "invalid_adapter", e.field(), e.getMessage()));
  }

  @ServerExceptionMapper
  public Response web(WebApplicationException e) {
    int status = e.getResponse().getStatus();
    if (status >= 500) return api(ApiError.internal(LOG, "admin request failed", e));
    return api(
        new ApiError(status, "invalid_request_error", "http_" + status, null, clientMessage(e)));
  }

  /**
   * A body that Jackson refused (unknown field, wrong type): say which field, without the parser's
   * internals (class names, source locations).
   */
  // Quarkus maps MismatchedInputException (which an unknown field is) itself, with an empty body:
  // these more specific mappers take precedence and name the field.
  @ServerExceptionMapper
  public Response unknownField(com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException e) {
    return json(e);
  }

  @ServerExceptionMapper
  public Response mismatch(com.fasterxml.jackson.databind.exc.MismatchedInputException e) {
    return json(e);
  }

  @ServerExceptionMapper
  public Response json(com.fasterxml.jackson.databind.JsonMappingException e) {
    String field = path(e);
    String why =
        e instanceof com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException
            ? "unknown field '" + field + "'"
            : "field '" + field + "' has the wrong type or value";
    return api(ApiError.invalid(field.isEmpty() ? null : field, "Invalid JSON body: " + why));
  }

  @ServerExceptionMapper
  public Response parse(com.fasterxml.jackson.core.JsonProcessingException e) {
    return api(
        new ApiError(
            400,
            "invalid_request_error",
            "invalid_json",
            null,
            "The request body is not valid JSON: " + e.getOriginalMessage()));
  }

  /** Two changes to one tenant's adapters at once: the loser retries. */
  @ServerExceptionMapper
  public Response contention(jakarta.persistence.PessimisticLockException e) {
    return api(
        ApiError.conflict(
            "Another change to this tenant's adapters is in progress; nothing was written. Retry."));
  }

  @ServerExceptionMapper
  public Response constraint(org.hibernate.exception.ConstraintViolationException e) {
    return api(
        ApiError.conflict(
            "A concurrent change conflicted with this one; nothing was written. Retry."));
  }

  @ServerExceptionMapper
  public Response database(jakarta.persistence.PersistenceException e) {
    LOG.log(Level.WARNING, "admin request hit a database error", e);
    return api(
        ApiError.unavailable(
            "The registry database did not complete the change; nothing was written. Retry."));
  }

  @ServerExceptionMapper
  public Response other(RuntimeException e) {
    return api(ApiError.internal(LOG, "admin request failed", e));
  }

  private static String clientMessage(WebApplicationException e) {
    Throwable c = e.getCause();
    if (c instanceof com.fasterxml.jackson.databind.JsonMappingException m) {
      return "Invalid JSON body at '" + path(m) + "'";
    }
    return e.getResponse().getStatusInfo().getReasonPhrase();
  }

  /** Where in the body Jackson stopped, as {@code field.sub[2].name}. */
  private static String path(com.fasterxml.jackson.databind.JsonMappingException e) {
    return e.getPath().stream()
        .map(r -> r.getFieldName() != null ? r.getFieldName() : "[" + r.getIndex() + "]")
        .collect(java.util.stream.Collectors.joining("."));
  }
}
