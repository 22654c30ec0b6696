replicas = "many"
tags     = "not-a-list"
replica  = 3
