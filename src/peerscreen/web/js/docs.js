// The API reference at /docs: Swagger UI, served by this server itself (no CDN), reading
// /openapi.json. Loaded as a module, so it runs after the deferred Swagger UI bundle.

/** @type {any} */
const SwaggerUIBundle = /** @type {any} */ (window).SwaggerUIBundle;

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
