package dev.prefixgate.api;

import dev.prefixgate.adapter.AdapterRegistry;
import dev.prefixgate.tenant.ApiKey;
import dev.prefixgate.tenant.RegistryEpoch;
import dev.prefixgate.tenant.Tenant;
import dev.prefixgate.tenant.Tenants;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.time.Instant;
import java.util.List;
import java.util.regex.Pattern;
import org.hibernate.Session;

/** Admin API for tenants and their API keys (admin key required, see {@link AdminAuth}). */
@Path("/admin/tenants")
@Produces(MediaType.APPLICATION_JSON)
@Consumes(MediaType.APPLICATION_JSON)
public class AdminTenantsResource {
  @Inject RegistryEpoch epoch;
  static final Pattern ID = Tenant.ID;
  static final int MAX_NAME_CHARS = 200;

  @Inject Tenants tenants;
  @Inject AdapterRegistry registry;
  @Inject Session db;

  /** {@code allowBase} defaults to false: base-model access is granted, never assumed. */
  public record CreateTenant(String id, String name, String defaultAdapter, Boolean allowBase) {}

  public record UpdateTenant(String name, String defaultAdapter, Boolean allowBase) {}

  public record TenantView(
      String id, String name, String defaultAdapter, boolean allowBase, Instant createdAt) {
    static TenantView of(Tenant t) {
      return new TenantView(t.id, t.displayName, t.defaultAdapter, t.allowBase, t.createdAt);
    }
  }

  public record KeyView(String id, String prefix, Instant createdAt, Instant revokedAt) {}

  /** The new key's plain text appears here once and is never shown again. */
  public record Created(TenantView tenant, String keyId, String apiKey) {}

  @POST
  public Response create(CreateTenant req) {
    if (req == null || req.id() == null || !ID.matcher(req.id()).matches()) {
      throw ApiError.invalid(
          "id", "id must match " + ID.pattern() + ", got " + (req == null ? null : req.id()));
    }
    String name = req.name() == null || req.name().isBlank() ? req.id() : req.name().strip();
    checkName(name);
    checkAdapterName(req.defaultAdapter());
    if (tenants.find(req.id()).isPresent())
      throw ApiError.conflict("tenant '" + req.id() + "' already exists");
    Tenant t =
        tenants.ensure(
            req.id(), name, req.defaultAdapter(), req.allowBase() != null && req.allowBase());
    Tenants.IssuedKey key = tenants.issueKey(t.id);
    return Response.status(201).entity(new Created(TenantView.of(t), key.id(), key.key())).build();
  }

  @GET
  @Transactional
  public List<TenantView> list() {
    return db.createSelectionQuery("from Tenant", Tenant.class).getResultList().stream()
        .map(TenantView::of)
        .toList();
  }

  @GET
  @Path("/{id}")
  public TenantView get(@PathParam("id") String id) {
    return TenantView.of(tenant(id));
  }

  @PUT
  @Path("/{id}")
  @Transactional
  public TenantView update(@PathParam("id") String id, UpdateTenant req) {
    Tenant t = db.find(Tenant.class, id);
    if (t == null) throw ApiError.notFound("tenant '" + id + "'");
    if (req == null) throw ApiError.invalid(null, "body required");
    if (req.name() != null) checkName(req.name().strip());
    checkAdapterName(
        req.defaultAdapter() == null || req.defaultAdapter().isBlank()
            ? null
            : req.defaultAdapter());
    if (req.name() != null && !req.name().isBlank()) t.displayName = req.name().strip();
    if (req.allowBase() != null) t.allowBase = req.allowBase();
    if (req.defaultAdapter() != null) {
      String d = req.defaultAdapter().isBlank() ? null : req.defaultAdapter();
      if (d != null && registry.active(id, d).isEmpty()) {
        throw ApiError.invalid(
            "defaultAdapter", "tenant '" + id + "' has no active adapter named '" + d + "'");
      }
      t.defaultAdapter = d;
    }
    db.flush(); // the tenant row before the epoch row, the order every change takes its locks in
    epoch.bump();
    return TenantView.of(t);
  }

  @GET
  @Path("/{id}/keys")
  @Transactional
  public List<KeyView> keys(@PathParam("id") String id) {
    tenant(id);
    return db
        .createSelectionQuery("from ApiKey where tenantId = ?1", ApiKey.class)
        .setParameter(1, id)
        .getResultList()
        .stream()
        .map(k -> new KeyView(k.id, k.keyPrefix, k.createdAt, k.revokedAt))
        .toList();
  }

  @POST
  @Path("/{id}/keys")
  @Consumes(MediaType.WILDCARD)
  public Response newKey(@PathParam("id") String id) {
    tenant(id);
    Tenants.IssuedKey key = tenants.issueKey(id);
    return Response.status(201)
        .entity(new Created(TenantView.of(tenant(id)), key.id(), key.key()))
        .build();
  }

  @DELETE
  @Path("/{id}/keys/{keyId}")
  @Transactional
  public Response revoke(@PathParam("id") String id, @PathParam("keyId") String keyId) {
    ApiKey k = db.find(ApiKey.class, keyId);
    if (k == null || !k.tenantId.equals(id))
      throw ApiError.notFound("key '" + keyId + "' of tenant '" + id + "'");
    if (k.revokedAt == null) {
      k.revokedAt = Instant.now();
      db.flush();
      epoch.bump(); // every replica stops accepting the key within the directory's poll interval
    }
    return Response.noContent().build();
  }

  private static void checkName(String name) {
    if (name.length() > MAX_NAME_CHARS) {
      throw ApiError.invalid(
          "name", "name is limited to " + MAX_NAME_CHARS + " characters, got " + name.length());
    }
  }

  private static void checkAdapterName(String adapter) {
    if (adapter != null && !ID.matcher(adapter).matches()) {
      throw ApiError.invalid(
          "defaultAdapter",
          "defaultAdapter must match "
              + ID.pattern()
              + ", got "
              + adapter.length()
              + " characters");
    }
  }

  private Tenant tenant(String id) {
    return tenants.find(id).orElseThrow(() -> ApiError.notFound("tenant '" + id + "'"));
  }
}
