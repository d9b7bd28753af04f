package shopstream.authz_test

import rego.v1

import data.shopstream.authz

alice := {"id": "USER-alice", "roles": ["CUSTOMER"]}

bob := {"id": "USER-bob", "roles": ["CUSTOMER"]}

admin := {"id": "USER-admin", "roles": ["ADMIN"]}

order(owner, status) := {"owner": owner, "status": status}

ingest := {"id": "SERVICE-iot-ingest", "roles": ["STOCK_KEEPER"]}

back_office := {"id": "SERVICE-simulator", "roles": ["MERCHANDISER", "WAREHOUSE"]}

test_the_ingest_may_adjust_stock_and_nothing_else if {
	authz.allow with input as {"action": "inventory.adjust", "user": ingest, "resource": {}}
	not authz.allow with input as {"action": "product.create", "user": ingest, "resource": {}}
	not authz.allow with input as {"action": "order.create", "user": ingest, "resource": {}}
	not authz.allow with input as {"action": "order.fulfill", "user": ingest, "resource": {}}
	d := authz.decision with input as {"action": "webhook.subscription.read", "user": ingest, "resource": {}}
	d.reasons == ["only ADMIN may do this"]
}

test_the_simulators_back_office_keeps_the_catalog_and_ships_but_sees_no_orders if {
	authz.allow with input as {"action": "product.create", "user": back_office, "resource": {}}
	authz.allow with input as {"action": "order.fulfill", "user": back_office, "resource": order("USER-alice", "PAID")}
	not authz.allow with input as {"action": "inventory.adjust", "user": back_office, "resource": {}}
	not authz.allow with input as {"action": "order.read", "user": back_office, "resource": order("USER-alice", "PAID")}
	not authz.allow with input as {"action": "dashboard.read", "user": back_office, "resource": {}}
	not authz.allow with input as {"action": "flash_sale.start", "user": back_office, "resource": {}}
}

test_owner_cancels_own_pending_order if {
	authz.allow with input as {"action": "order.cancel", "user": alice, "resource": order("USER-alice", "PENDING")}
}

test_owner_cannot_cancel_paid_order if {
	not authz.allow with input as {"action": "order.cancel", "user": alice, "resource": order("USER-alice", "PAID")}
	d := authz.decision with input as {"action": "order.cancel", "user": alice, "resource": order("USER-alice", "PAID")}
	"only PENDING orders can be canceled" in d.reasons
}

test_customer_cannot_cancel_someone_elses_order if {
	not authz.allow with input as {"action": "order.cancel", "user": bob, "resource": order("USER-alice", "PENDING")}
	d := authz.decision with input as {"action": "order.cancel", "user": bob, "resource": order("USER-alice", "PENDING")}
	"not your resource" in d.reasons
}

test_admin_cancels_any_pending_but_no_paid_order if {
	authz.allow with input as {"action": "order.cancel", "user": admin, "resource": order("USER-alice", "PENDING")}
	not authz.allow with input as {"action": "order.cancel", "user": admin, "resource": order("USER-alice", "PAID")}
}

test_price_override_needs_admin if {
	authz.allow with input as {"action": "product.price.change", "user": admin, "resource": {}}
	not authz.allow with input as {"action": "product.price.change", "user": alice, "resource": {}}
	d := authz.decision with input as {"action": "product.price.change", "user": alice, "resource": {}}
	"only ADMIN may do this" in d.reasons
}

test_customers_create_orders_and_read_only_their_own if {
	authz.allow with input as {"action": "order.create", "user": alice, "resource": {}}
	authz.allow with input as {"action": "order.read", "user": alice, "resource": order("USER-alice", "PAID")}
	not authz.allow with input as {"action": "order.read", "user": bob, "resource": order("USER-alice", "PAID")}
}

test_empty_owner_is_nobody if {
	not authz.allow with input as {"action": "order.read", "user": {"id": "", "roles": ["CUSTOMER"]}, "resource": order("", "PENDING")}
}

test_no_roles_no_access if {
	not authz.allow with input as {"action": "order.create", "user": {"id": "USER-x", "roles": []}, "resource": {}}
}

test_flash_sales_and_the_dashboard_are_admin_only if {
	authz.allow with input as {"action": "flash_sale.start", "user": admin, "resource": {}}
	not authz.allow with input as {"action": "flash_sale.end", "user": alice, "resource": {}}
	authz.allow with input as {"action": "dashboard.read", "user": admin, "resource": {}}
	not authz.allow with input as {"action": "dashboard.read", "user": alice, "resource": {}}
}

test_webhook_subscriptions_are_admin_only if {
	every action in {"webhook.subscription.create", "webhook.subscription.read", "webhook.subscription.delete"} {
		authz.allow with input as {"action": action, "user": admin, "resource": {}}
		not authz.allow with input as {"action": action, "user": alice, "resource": {}}
		"only ADMIN may do this" in authz.decision.reasons with input as {"action": action, "user": alice, "resource": {}}
	}
}

test_fulfil_is_admin_only if {
	authz.allow with input as {"action": "order.fulfill", "user": admin, "resource": order("USER-alice", "PAID")}
	not authz.allow with input as {"action": "order.fulfill", "user": alice, "resource": order("USER-alice", "PAID")}
}

test_a_token_without_roles_cannot_use_its_own_orders if {
	not authz.allow with input as {"action": "order.read", "user": {"id": "USER-x", "roles": []}, "resource": order("USER-x", "PENDING")}
	not authz.allow with input as {"action": "order.cancel", "user": {"id": "USER-x", "roles": []}, "resource": order("USER-x", "PENDING")}
}

test_a_customer_lists_only_their_own_order_history if {
	authz.allow with input as {"action": "customer.orders.read", "user": alice, "resource": {"owner": "USER-alice"}}
	not authz.allow with input as {"action": "customer.orders.read", "user": bob, "resource": {"owner": "USER-alice"}}
	authz.allow with input as {"action": "customer.orders.read", "user": {"id": "ADMIN-1", "roles": ["ADMIN"]}, "resource": {"owner": "USER-alice"}}
	not authz.allow with input as {"action": "customer.orders.read", "user": back_office, "resource": {"owner": "USER-alice"}}
}
