// The function app and everything it needs: `azd up` provisions this and deploys the code.
//
// - Function App on the Flex Consumption plan (Linux, Python), whose host storage, account
//   storage and Key Vault access all use one user-assigned managed identity: no keys in settings.
// - Storage account with the accounts table; the identity gets Storage Table Data Contributor on
//   that table only (the least role that reads and writes entities), plus what the Functions host
//   needs on the account (Blob Data Owner for its leases and the deployment package).
// - The mail queue (AUTH_MAIL_QUEUE) in that account: the HTTP functions put mail on it, the
//   send_mail function (a queue trigger) sends it; the identity gets Storage Queue Data
//   Contributor on the account for both.
// - Azure Communication Services Email with an Azure-managed sender domain; send_mail reaches it
//   with the same identity (AUTH_MAIL_ACS_ENDPOINT), no access key.
// - Key Vault holding the token signing key, referenced from AUTH_SIGNING_KEY.
// - Application Insights on a Log Analytics workspace.
targetScope = 'resourceGroup'

@description('Name of the azd environment; names and tags derive from it.')
param environmentName string

@description('Azure region for every resource (one that offers Flex Consumption).')
param location string = resourceGroup().location

@secure()
@description('Token signing key: 64 hex digits (32 random bytes). The azd preprovision hook generates it once.')
param signingKey string

@secure()
@description('Key sealing second-factor secrets at rest: 64 hex digits. The azd preprovision hook generates it once.')
param encryptionKey string

@secure()
@description('Private key that signs tokens under ES256: PKCS#8 PEM of a P-256 key (newlines may be written as \\n). The azd preprovision hook generates it once.')
param signingPrivateKey string

@description('HS256 (the default: tokens as before), ES256 (recommended for new apps) or RS256. See docs/tokens.md.')
@allowed(['HS256', 'ES256', 'RS256'])
param tokenAlgorithm string = 'HS256'

@description('appservice or zumo.')
@allowed(['appservice', 'zumo'])
param tokenFormat string = 'appservice'

@description('Python version of the function app: 3.13, the version the test suite runs the functions on, through the worker Azure runs for it (azure-functions-runtime-v1, pinned in requirements.txt). Flex Consumption lists the versions a region offers: az functionapp list-flexconsumption-runtimes --location <region> --runtime python.')
@allowed(['3.11', '3.12', '3.13'])
param pythonVersion string = '3.13'

@description('Memory of each instance, in MB (Flex Consumption).')
@allowed([2048, 4096])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Where Communication Services keeps mail data at rest (its data location), such as United States or Europe.')
param mailDataLocation string = 'United States'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var accountsTable = 'Accounts'
var mailQueueName = 'auth-mail'
var deploymentContainer = 'app-package-${token}'

// Built-in role definition ids.
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var communicationAndEmailServiceOwner = '09976791-48a7-449e-bb21-39d1a415f350'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${token}'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packages 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource accounts 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tables
  name: accountsTable
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The Functions host creates '${mailQueueName}-poison' beside it when a message has failed maxDequeueCount times (host.json: 8).
resource mailQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queues
  name: mailQueueName
}

// Mail: an Email Communication Service with an Azure-managed domain (DoNotReply@<id>.azurecomm.net,
// no DNS to set up), linked to the Communication Services resource the app sends through. The two
// must share a data location.
resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: 'ecs-${token}'
  location: 'global'
  tags: tags
  properties: {
    dataLocation: mailDataLocation
  }
}

resource mailDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: 'acs-${token}'
  location: 'global'
  tags: tags
  properties: {
    dataLocation: mailDataLocation
    linkedDomains: [mailDomain.id]
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
  }
}

resource signingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'auth-signing-key'
  properties: {
    value: signingKey
    contentType: 'hex'
  }
}

resource signingPrivateKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'auth-signing-private-key'
  properties: {
    value: signingPrivateKey
    contentType: 'application/x-pem-file'
  }
}

resource encryptionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'auth-encryption-key'
  properties: {
    value: encryptionKey
    contentType: 'hex'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${token}'
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: { name: 'python', version: pythonVersion }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: {
      // Functions host storage, by identity.
      AzureWebJobsStorage__accountName: storage.name
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identity.properties.clientId
      // The mail queue trigger's connection is AzureWebJobsStorage: the same account, by identity.
      AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
      APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
      // The service's own settings (docs/configuration.md).
      AZURE_CLIENT_ID: identity.properties.clientId
      ACCOUNTS_TABLE_ENDPOINT: storage.properties.primaryEndpoints.table
      ACCOUNTS_TABLE: accountsTable
      AUTH_SIGNING_KEY: '@Microsoft.KeyVault(SecretUri=${signingKeySecret.properties.secretUri})'
      AUTH_ENCRYPTION_KEY: '@Microsoft.KeyVault(SecretUri=${encryptionKeySecret.properties.secretUri})'
      AUTH_SIGNING_PRIVATE_KEY: '@Microsoft.KeyVault(SecretUri=${signingPrivateKeySecret.properties.secretUri})'
      AUTH_TOKEN_ALGORITHM: tokenAlgorithm
      AUTH_TOKEN_FORMAT: tokenFormat
      AUTH_TOKEN_LIFETIME_SECONDS: '2592000'
      // Mail: queued in the host storage account, sent through Communication Services by identity.
      AUTH_MAIL_QUEUE: mailQueue.name
      AUTH_MAIL_ACS_ENDPOINT: 'https://${communication.properties.hostName}'
      AUTH_MAIL_FROM: 'DoNotReply@${mailDomain.properties.mailFromSenderDomain}'
      // Links in mails open the bundle's reset and verification pages on the app's own host name.
      AUTH_PUBLIC_BASE_URL: 'https://${app.properties.defaultHostName}'
      // The cleanup/ timer's schedule (NCRONTAB, with seconds): hourly, on the hour. The host reads it.
      AUTH_CLEANUP_SCHEDULE: '0 0 * * * *'
    }
    dependsOn: [tableAccess, blobAccess, secretAccess, encryptionKeyAccess, privateKeyAccess, queueAccess, mailAccess]
  }
}

resource tableAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(accounts.id, identity.id, storageTableDataContributor)
  scope: accounts
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

resource blobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
  }
}

// Storage Queue Data Contributor on the account, not just on the mail queue: the HTTP functions add
// messages; the queue trigger reads, deletes and updates them (visibility, dequeue count), and moves
// a message that keeps failing to the poison queue, which the host creates (and writes) on demand.
// Reader + Message Processor would not cover creating and writing the poison queue.
resource queueAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// Sending mail with Microsoft Entra ID (this identity, no access key). Microsoft's page on managed
// identities for Communication Services (https://learn.microsoft.com/azure/communication-services/how-tos/managed-identity)
// only says to grant the identity access to the resource; the role it documents for sending with
// an Entra identity is the built-in "Communication and Email Service Owner" on the Communication
// Services resource ("Assign a role to a Microsoft Entra application for SMTP authentication",
// https://learn.microsoft.com/azure/communication-services/quickstarts/email/send-email-smtp/smtp-authentication).
// There is no narrower built-in role; that page's least-privilege alternative is a custom role with
// Microsoft.Communication/CommunicationServices/Read and /Write and EmailServices/write. Scoped to
// this one resource, so the identity can manage nothing else.
resource mailAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communication.id, identity.id, communicationAndEmailServiceOwner)
  scope: communication
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', communicationAndEmailServiceOwner)
  }
}

resource privateKeyAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(signingPrivateKeySecret.id, identity.id, keyVaultSecretsUser)
  scope: signingPrivateKeySecret
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

resource encryptionKeyAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(encryptionKeySecret.id, identity.id, keyVaultSecretsUser)
  scope: encryptionKeySecret
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

resource secretAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(signingKeySecret.id, identity.id, keyVaultSecretsUser)
  scope: signingKeySecret
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}

output AZURE_FUNCTION_APP_NAME string = app.name
output SERVICE_API_ENDPOINT string = 'https://${app.properties.defaultHostName}'
output ACCOUNTS_TABLE_ENDPOINT string = storage.properties.primaryEndpoints.table
output AUTH_MAIL_ACS_ENDPOINT string = 'https://${communication.properties.hostName}'
output AUTH_MAIL_FROM string = 'DoNotReply@${mailDomain.properties.mailFromSenderDomain}'
