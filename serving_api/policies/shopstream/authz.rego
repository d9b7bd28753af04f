# Authorization of the storefront's mutations (domain spec §9). The API asks one question per
# request: POST /v1/data/shopstream/authz/decision with
#   input = {"action": "...", "user": {"id": "...", "roles": [...]}, "resource": {...}}
# and gets {"allow": bool, "reasons": [...]} back.
package shopstream.authz

import rego.v1

default allow := false

roles := {r | some r in input.user.roles}

is_admin if "ADMIN" in roles

is_customer if "CUSTOMER" in roles

owns_resource if {
	input.resource.owner != ""
	input.resource.owner == input.user.id
	some r in roles
	r in {"CUSTOMER", "ADMIN"}
}

# catalog and inventory administration, price overrides, fulfilment, partner webhooks: ADMIN only
admin_actions := {
	"product.create",
	"product.update",
	"product.delete",
	"product.price.change",
	"flash_sale.start",
	"flash_sale.end",
	"dashboard.read",
	"inventory.adjust",
	"order.fulfill",
	"webhook.subscription.create",
	"webhook.subscription.read",
	"webhook.subscription.delete",
}

allow if {
	input.action in admin_actions
	is_admin
}

# the narrow roles of internal callers: each may do its one job and nothing else
#   STOCK_KEEPER  the IoT ingest: stock adjustments from shelf sensors and scanners
#   MERCHANDISER  catalog upkeep (the storefront simulator seeds its products)
#   WAREHOUSE     fulfilment of paid orders (the storefront simulator ships them)
service_actions := {
	"STOCK_KEEPER": {"inventory.adjust"},
	"MERCHANDISER": {"product.create", "product.update", "product.price.change"},
	"WAREHOUSE": {"order.fulfill"},
}

allow if allowed_by_service_role

allowed_by_service_role if {
	some r in roles
	input.action in service_actions[r]
}

# storefront actions of a signed-in customer (admins may act for them)
allow if {
	input.action in {"cart.create", "order.create"}
	some r in roles
	r in {"CUSTOMER", "ADMIN"}
}

# a customer's own carts and orders, and their order history (customer.orders.read: the resource's
# owner is the customer whose orders are listed); admins see everything
allow if {
	input.action in {"cart.read", "cart.update", "cart.checkout", "order.read", "order.pay", "customer.orders.read"}
	owns_resource
}

allow if {
	input.action in {"cart.read", "cart.update", "cart.checkout", "order.read", "order.pay", "customer.orders.read"}
	is_admin
}

# cancel: only PENDING orders, and only their owner (or an admin)
allow if {
	input.action == "order.cancel"
	input.resource.status == "PENDING"
	owns_resource
}

allow if {
	input.action == "order.cancel"
	input.resource.status == "PENDING"
	is_admin
}

reasons contains "only ADMIN may do this" if {
	input.action in admin_actions
	not is_admin
	not allowed_by_service_role
}

reasons contains "only PENDING orders can be canceled" if {
	input.action == "order.cancel"
	input.resource.status != "PENDING"
}

reasons contains "not your resource" if {
	input.action in {"cart.read", "cart.update", "cart.checkout", "order.read", "order.pay", "order.cancel", "customer.orders.read"}
	not owns_resource
	not is_admin
}

reasons contains "no role allows this" if {
	not allow
	count(roles) == 0
}

decision := {"allow": allow, "reasons": [r | some r in reasons]}
