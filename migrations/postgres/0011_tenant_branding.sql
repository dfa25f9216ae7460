-- How a tenant presents itself on its recipients' pages (issue 17): a display name and a small
-- PNG or JPEG logo, set through /api/v1/admin/branding. The same change as
-- migrations/sqlite/0011_tenant_branding.sql.
ALTER TABLE tenants ADD COLUMN display_name TEXT;
ALTER TABLE tenants ADD COLUMN logo BYTEA;
ALTER TABLE tenants ADD COLUMN logo_type TEXT;
