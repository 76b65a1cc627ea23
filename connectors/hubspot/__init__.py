"""HubSpot. For now only the association backfill (`deal_contacts`); the connector itself registers from its
own module when it lands, never from this file."""
